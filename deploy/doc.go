// Package deploy holds resilient-dht's container image (Dockerfile) and its
// Kubernetes manifests (k8s/), and the test that checks them: every manifest
// decodes strictly into the Kubernetes API types, and its settings agree with
// the binary's real flags (built from ../cmd/resilient-dht and asked with
// `run -h`), with each other and with the Dockerfile.
//
// It is a module of its own so that the main module does not depend on the
// Kubernetes API packages. Run its test from this directory:
//
//	cd deploy && go test ./...
package deploy
