package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// binary is resilient-dht built from ../cmd/resilient-dht by TestMain (or the
// one $RESILIENT_DHT names); its `run -h` output is the truth the manifests'
// arguments are checked against.
var binary string

func TestMain(m *testing.M) {
	if b := os.Getenv("RESILIENT_DHT"); b != "" { // a binary built already
		binary = b
		goleak.VerifyTestMain(m)
	}
	dir, err := os.MkdirTemp("", "deploy-test-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "resilient-dht")
	build := exec.Command("go", "build", "-o", binary, "./cmd/resilient-dht")
	build.Dir = ".." // the main module
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building resilient-dht:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// decodeStrict decodes one YAML document into obj: duplicate keys, unknown
// fields and fields spelt in another case are errors.
func decodeStrict(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return fmt.Errorf("%v", strict)
	}
	return nil
}

// objects are the decoded manifests, by kind.
type objects struct {
	statefulSets []*appsv1.StatefulSet
	services     []*corev1.Service
	pdbs         []*policyv1.PodDisruptionBudget
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeFile decodes every document of a manifest file into the Kubernetes type
// its apiVersion and kind name; a kind the test does not know is an error.
func decodeFile(t *testing.T, file string, into *objects) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s document %d: %v", file, i, err)
		}
		var obj any
		switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
		case "apps/v1 StatefulSet":
			o := new(appsv1.StatefulSet)
			into.statefulSets, obj = append(into.statefulSets, o), o
		case "v1 Service":
			o := new(corev1.Service)
			into.services, obj = append(into.services, o), o
		case "policy/v1 PodDisruptionBudget":
			o := new(policyv1.PodDisruptionBudget)
			into.pdbs, obj = append(into.pdbs, o), o
		case "v1 ConfigMap":
			o := new(corev1.ConfigMap)
			into.configMaps, obj = append(into.configMaps, o), o
		case "v1 Secret":
			o := new(corev1.Secret)
			into.secrets, obj = append(into.secrets, o), o
		default:
			t.Fatalf("%s document %d: kind %q the test does not check", file, i, gvk)
		}
		if err := decodeStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s document %d (%s): %v", file, i, tm.Kind, err)
		}
	}
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func loadManifests(t *testing.T) *objects {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	var o objects
	for _, f := range files {
		decodeFile(t, f, &o)
	}
	if len(o.statefulSets) != 1 || len(o.services) != 1 || len(o.pdbs) != 1 {
		t.Fatalf("want one StatefulSet, Service and PodDisruptionBudget; have %d, %d, %d",
			len(o.statefulSets), len(o.services), len(o.pdbs))
	}
	return &o
}

// runFlags returns the flags of `resilient-dht run` and whether each takes a
// value, from the binary's own -h output.
func runFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(binary, "run", "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("resilient-dht run -h: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	// flag.PrintDefaults: "  -name type" (type omitted for booleans).
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)( \S+)?$`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = m[2] != ""
	}
	if len(flags) < 5 || !flags["http"] {
		t.Fatalf("could not read the run flags from:\n%s", out)
	}
	return flags
}

// parseArgs checks args against the binary's run flags and returns the values
// of each flag.
func parseArgs(t *testing.T, where string, args []string, flags map[string]bool) map[string][]string {
	t.Helper()
	if len(args) == 0 || args[0] != "run" {
		t.Fatalf("%s: arguments %q do not start with the run command", where, args)
	}
	vals := map[string][]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, known := flags[name]
		switch {
		case !strings.HasPrefix(a, "-"):
			t.Fatalf("%s: argument %q is not a flag", where, a)
		case !known:
			t.Fatalf("%s: %s is not a flag of resilient-dht run (flags: %v)", where, a, slices.Sorted(mapKeys(flags)))
		case takesValue && !hasValue:
			if i+1 >= len(args) {
				t.Fatalf("%s: %s has no value", where, a)
			}
			i++
			value = args[i]
		}
		vals[name] = append(vals[name], value)
	}
	return vals
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func one(t *testing.T, vals map[string][]string, name string) string {
	t.Helper()
	if len(vals[name]) != 1 {
		t.Fatalf("--%s: want it set once, have %q", name, vals[name])
	}
	return vals[name][0]
}

// under reports whether file is dir or inside it.
func under(file, dir string) bool {
	file, dir = path.Clean(file), path.Clean(dir)
	return file == dir || strings.HasPrefix(file, strings.TrimSuffix(dir, "/")+"/")
}

// listenPorts returns the ports of --listen multiaddrs by protocol (TCP, UDP).
func listenPorts(t *testing.T, addrs []string) map[corev1.Protocol]int32 {
	t.Helper()
	out := map[corev1.Protocol]int32{}
	for _, a := range addrs {
		parts := strings.Split(a, "/")
		for i := 0; i+1 < len(parts); i++ {
			var proto corev1.Protocol
			switch parts[i] {
			case "tcp":
				proto = corev1.ProtocolTCP
			case "udp":
				proto = corev1.ProtocolUDP
			default:
				continue
			}
			p, err := strconv.Atoi(parts[i+1])
			if err != nil || p <= 0 || p > 65535 {
				t.Fatalf("--listen %s: bad port", a)
			}
			out[proto] = int32(p)
		}
	}
	return out
}

// containerPort resolves a probe's port (a number or a port name) on c.
func containerPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) *corev1.ContainerPort {
	t.Helper()
	for i, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal && cp.Protocol == corev1.ProtocolTCP) {
			return &c.Ports[i]
		}
	}
	t.Fatalf("container %s has no port %s", c.Name, p.String())
	return nil
}

func mountFor(c *corev1.Container, file string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i, m := range c.VolumeMounts {
		if under(file, m.MountPath) && (best == nil || len(m.MountPath) > len(best.MountPath)) {
			best = &c.VolumeMounts[i]
		}
	}
	return best
}

func TestManifests(t *testing.T) {
	o := loadManifests(t)
	flags := runFlags(t)
	sts, svc, pdb := o.statefulSets[0], o.services[0], o.pdbs[0]
	pod := &sts.Spec.Template.Spec
	var c *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "resilient-dht" {
			c = &pod.Containers[i]
		}
	}
	if c == nil {
		t.Fatal("StatefulSet has no container named resilient-dht")
	}
	args := parseArgs(t, "StatefulSet container", append(slices.Clone(c.Command), c.Args...), flags)
	labels := sts.Spec.Template.Labels
	replicas := int32(1)
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}

	t.Run("readiness probe is /healthz on --http", func(t *testing.T) {
		host, port, err := net.SplitHostPort(one(t, args, "http"))
		if err != nil {
			t.Fatal(err)
		}
		if host != "0.0.0.0" && host != "" && host != "::" {
			t.Errorf("--http host %q: the kubelet cannot reach it; listen on 0.0.0.0", host)
		}
		rp := c.ReadinessProbe
		if rp == nil || rp.HTTPGet == nil {
			t.Fatal("no httpGet readiness probe")
		}
		if rp.HTTPGet.Path != "/healthz" {
			t.Errorf("readiness path %q, want /healthz", rp.HTTPGet.Path)
		}
		if cp := containerPort(t, c, rp.HTTPGet.Port); strconv.Itoa(int(cp.ContainerPort)) != port {
			t.Errorf("readiness probe port %d, --http port %s", cp.ContainerPort, port)
		}
		if rp.PeriodSeconds <= 0 || rp.FailureThreshold <= 0 || rp.TimeoutSeconds <= 0 {
			t.Errorf("readiness probe without explicit period, timeout and failure threshold: %+v", rp)
		}
		if lp := c.LivenessProbe; lp != nil {
			var p intstr.IntOrString
			switch {
			case lp.TCPSocket != nil:
				p = lp.TCPSocket.Port
			case lp.HTTPGet != nil:
				p = lp.HTTPGet.Port
			default:
				t.Fatal("liveness probe neither tcpSocket nor httpGet")
			}
			if cp := containerPort(t, c, p); strconv.Itoa(int(cp.ContainerPort)) != port {
				t.Errorf("liveness probe port %d, --http port %s", cp.ContainerPort, port)
			}
		}
	})

	t.Run("identity and data dir on the pod's own volume", func(t *testing.T) {
		id, data := one(t, args, "identity"), one(t, args, "data-dir")
		mi, md := mountFor(c, id), mountFor(c, data)
		if mi == nil || md == nil {
			t.Fatalf("no volume mount covers --identity %s (%v) or --data-dir %s (%v)", id, mi, data, md)
		}
		if mi.Name != md.Name {
			t.Errorf("--identity on volume %q, --data-dir on %q: want one volume", mi.Name, md.Name)
		}
		if mi.ReadOnly || md.ReadOnly {
			t.Error("the identity/data mount is read-only: the node writes its key and backup peers there")
		}
		var fromClaim bool
		for _, vc := range sts.Spec.VolumeClaimTemplates {
			fromClaim = fromClaim || vc.Name == mi.Name
		}
		if !fromClaim {
			t.Errorf("volume %q is not a volumeClaimTemplate: the identity would not survive a pod restart", mi.Name)
		}
	})

	t.Run("bootstrap list from the ConfigMap the script makes", func(t *testing.T) {
		f := one(t, args, "bootstrap-file")
		m := mountFor(c, f)
		if m == nil {
			t.Fatalf("no volume mount covers --bootstrap-file %s", f)
		}
		v := volume(t, pod, m.Name)
		if v.ConfigMap == nil {
			t.Fatalf("--bootstrap-file is on volume %q, not a ConfigMap", m.Name)
		}
		if rel := strings.TrimPrefix(f, strings.TrimSuffix(m.MountPath, "/")+"/"); rel != "bootstrap.txt" {
			t.Errorf("--bootstrap-file %s: the ConfigMap key is bootstrap.txt", f)
		}
		if v.ConfigMap.Name != "resilient-dht-bootstrap" {
			t.Errorf("ConfigMap %q; bootstrap-peers.sh makes resilient-dht-bootstrap", v.ConfigMap.Name)
		}
	})

	t.Run("ports of --listen on the container and the headless Service", func(t *testing.T) {
		lp := listenPorts(t, args["listen"])
		if lp[corev1.ProtocolTCP] == 0 {
			t.Fatal("no TCP --listen address")
		}
		for proto, port := range lp {
			var onPod, onSvc bool
			for _, cp := range c.Ports {
				onPod = onPod || (cp.ContainerPort == port && cp.Protocol == proto)
			}
			for _, sp := range svc.Spec.Ports {
				onSvc = onSvc || (sp.Port == port && sp.Protocol == proto)
			}
			if !onPod || !onSvc {
				t.Errorf("--listen %s port %d: on the container %v, on the Service %v", proto, port, onPod, onSvc)
			}
		}
	})

	t.Run("headless Service and StatefulSet agree", func(t *testing.T) {
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service clusterIP %q: want None (headless: one DNS name per pod)", svc.Spec.ClusterIP)
		}
		if !svc.Spec.PublishNotReadyAddresses {
			t.Error("Service without publishNotReadyAddresses: a pod is ready only once it has peers, and gets none while its DNS name waits for readiness")
		}
		if sts.Spec.ServiceName != svc.Name {
			t.Errorf("StatefulSet serviceName %q, Service %q", sts.Spec.ServiceName, svc.Name)
		}
		if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("podManagementPolicy %q: OrderedReady never starts pod 1, since pod 0 is not ready before it has peers", sts.Spec.PodManagementPolicy)
		}
		if !matches(svc.Spec.Selector, labels) {
			t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, labels)
		}
		if sts.Spec.Selector == nil || !matches(sts.Spec.Selector.MatchLabels, labels) {
			t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector, labels)
		}
		if pdb.Spec.Selector == nil || !matches(pdb.Spec.Selector.MatchLabels, labels) {
			t.Errorf("PodDisruptionBudget selector %v does not select the pods %v", pdb.Spec.Selector, labels)
		}
		if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
			t.Error("PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
		}
		mp, err := strconv.Atoi(one(t, args, "min-peers"))
		if err != nil || int32(mp) >= replicas {
			t.Errorf("--min-peers %s with %d replicas: a node can have at most %d peers", one(t, args, "min-peers"), replicas, replicas-1)
		}
	})

	t.Run("memory request and limit", func(t *testing.T) {
		req, lim := c.Resources.Requests.Memory(), c.Resources.Limits.Memory()
		if req.IsZero() || lim.IsZero() || lim.Cmp(*req) < 0 {
			t.Errorf("memory request %v, limit %v: want both, limit ≥ request", req, lim)
		}
	})

	t.Run("non-root", func(t *testing.T) {
		sc := pod.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Fatalf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", sc)
		}
		if sc.FSGroup != nil && (sc.FSGroupChangePolicy == nil || *sc.FSGroupChangePolicy != corev1.FSGroupChangeOnRootMismatch) {
			t.Errorf("fsGroup without fsGroupChangePolicy OnRootMismatch: the kubelet would add group rw to identity.key on every mount, and the node refuses such a key")
		}
		for _, ct := range slices.Concat(pod.InitContainers, pod.Containers) {
			s := ct.SecurityContext
			switch {
			case s == nil || s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation:
				t.Errorf("container %s: allowPrivilegeEscalation not false", ct.Name)
			case s.Privileged != nil && *s.Privileged:
				t.Errorf("container %s: privileged", ct.Name)
			case s.RunAsUser != nil && *s.RunAsUser == 0:
				t.Errorf("container %s: runs as root", ct.Name)
			case s.Capabilities == nil || !slices.Contains(s.Capabilities.Drop, "ALL"):
				t.Errorf("container %s: capabilities not dropped", ct.Name)
			}
		}
	})

	t.Run("init container writes --identity from the bootstrap keys Secret", func(t *testing.T) {
		id := one(t, args, "identity")
		if len(pod.InitContainers) != 1 {
			t.Fatalf("want one init container, have %d", len(pod.InitContainers))
		}
		ic := &pod.InitContainers[0]
		script := strings.Join(slices.Concat(ic.Command, ic.Args), " ")
		if !strings.Contains(script, id) {
			t.Errorf("init container does not write %s (--identity):\n%s", id, script)
		}
		if m := mountFor(ic, id); m == nil || m.Name != mountFor(c, id).Name || m.MountPath != mountFor(c, id).MountPath {
			t.Errorf("init container mounts %s differently from the node", id)
		}
		var keys *corev1.Volume
		for _, m := range ic.VolumeMounts {
			if v := podVolume(pod, m.Name); v != nil && v.Secret != nil {
				keys = v
				if !strings.Contains(script, m.MountPath+"/$POD_NAME.key") {
					t.Errorf("init container does not read %s/$POD_NAME.key", m.MountPath)
				}
			}
		}
		if keys == nil {
			t.Fatal("init container mounts no Secret")
		}
		if keys.Secret.SecretName != "resilient-dht-bootstrap-keys" {
			t.Errorf("Secret %q; bootstrap-peers.sh makes resilient-dht-bootstrap-keys", keys.Secret.SecretName)
		}
		if dm := keys.Secret.DefaultMode; dm == nil || *dm&0o077 != 0 {
			mode := "unset"
			if dm != nil {
				mode = fmt.Sprintf("%#o", *dm)
			}
			t.Errorf("Secret defaultMode %s: keys must be readable by their owner only (write it as octal 0400)", mode)
		}
	})

	t.Run("Prometheus scrapes --http at /metrics", func(t *testing.T) {
		_, port, _ := net.SplitHostPort(one(t, args, "http"))
		var httpPort string
		for _, cp := range c.Ports {
			if strconv.Itoa(int(cp.ContainerPort)) == port && cp.Protocol == corev1.ProtocolTCP {
				httpPort = cp.Name
			}
		}
		if len(o.configMaps) != 1 {
			t.Fatalf("want one ConfigMap (the scrape config), have %d", len(o.configMaps))
		}
		var cfg scrapeConfig
		if err := decodeStrict([]byte(o.configMaps[0].Data["scrape-config.yaml"]), &cfg); err != nil {
			t.Fatalf("scrape-config.yaml: %v", err)
		}
		if len(cfg.ScrapeConfigs) != 1 {
			t.Fatalf("want one scrape job, have %d", len(cfg.ScrapeConfigs))
		}
		job := cfg.ScrapeConfigs[0]
		if job.MetricsPath != "/metrics" {
			t.Errorf("metrics_path %q", job.MetricsPath)
		}
		keep := map[string]string{}
		for _, r := range job.RelabelConfigs {
			if r.Action == "keep" && len(r.SourceLabels) == 1 {
				keep[r.SourceLabels[0]] = r.Regex
			}
		}
		if keep["__meta_kubernetes_pod_container_port_name"] != httpPort || httpPort == "" {
			t.Errorf("the scrape job keeps port %q; --http is port %q", keep["__meta_kubernetes_pod_container_port_name"], httpPort)
		}
		if v := keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"]; v != labels["app.kubernetes.io/name"] {
			t.Errorf("the scrape job keeps app %q; the pods are %q", v, labels["app.kubernetes.io/name"])
		}
	})
}

// scrapeConfig is the part of a Prometheus configuration the test reads.
type scrapeConfig struct {
	ScrapeConfigs []struct {
		JobName             string `json:"job_name"`
		MetricsPath         string `json:"metrics_path"`
		ScrapeInterval      string `json:"scrape_interval"`
		KubernetesSDConfigs []struct {
			Role string `json:"role"`
		} `json:"kubernetes_sd_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `json:"source_labels"`
			Action       string   `json:"action"`
			Regex        string   `json:"regex"`
			TargetLabel  string   `json:"target_label"`
		} `json:"relabel_configs"`
	} `json:"scrape_configs"`
}

func volume(t *testing.T, pod *corev1.PodSpec, name string) *corev1.Volume {
	t.Helper()
	v := podVolume(pod, name)
	if v == nil {
		t.Fatalf("no volume %q in the pod", name)
	}
	return v
}

// podVolume is the pod's volume called name, nil if there is none (a
// volumeClaimTemplate's volume is not in the pod template).
func podVolume(pod *corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestBootstrapPeersScript runs bootstrap-peers.sh with the real binary and
// checks what it writes against the StatefulSet: the Secret's keys are the
// names the init container looks for, and each bootstrap address is the DNS
// name of one of the first pods behind the headless Service on the TCP
// --listen port, with the peer ID keygen printed.
func TestBootstrapPeersScript(t *testing.T) {
	o := loadManifests(t)
	sts, svc := o.statefulSets[0], o.services[0]
	var c corev1.Container
	for _, ct := range sts.Spec.Template.Spec.Containers {
		if ct.Name == "resilient-dht" {
			c = ct
		}
	}
	args := parseArgs(t, "StatefulSet container", append(slices.Clone(c.Command), c.Args...), runFlags(t))
	tcpPort := listenPorts(t, args["listen"])[corev1.ProtocolTCP]

	out := t.TempDir()
	cmd := exec.Command("sh", "bootstrap-peers.sh", out)
	cmd.Env = append(os.Environ(), "RESILIENT_DHT="+binary)
	stdout, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bootstrap-peers.sh: %v\n%s", err, stdout)
	}
	var gen objects
	decodeFile(t, filepath.Join(out, "bootstrap-peers.yaml"), &gen)
	if len(gen.secrets) != 1 || len(gen.configMaps) != 1 {
		t.Fatalf("want one Secret and one ConfigMap, have %d and %d", len(gen.secrets), len(gen.configMaps))
	}
	lines := strings.Fields(gen.configMaps[0].Data["bootstrap.txt"])
	if len(lines) != 3 || len(gen.secrets[0].Data) != 3 {
		t.Fatalf("want 3 bootstrap peers and 3 keys, have %q and %d keys", lines, len(gen.secrets[0].Data))
	}
	addr := regexp.MustCompile(`^/dns4/([a-z0-9-]+)-([0-9]+)\.([a-z0-9-]+)/tcp/([0-9]+)/p2p/(12D3Koo\w+)$`)
	for _, l := range lines {
		m := addr.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("bootstrap address %q is not /dns4/<pod>.<service>/tcp/<port>/p2p/<id>", l)
		}
		ordinal, _ := strconv.Atoi(m[2])
		if m[1] != sts.Name || m[3] != svc.Name || int32(ordinal) >= *sts.Spec.Replicas {
			t.Errorf("%q: not a pod of StatefulSet %s (%d replicas) behind Service %s", l, sts.Name, *sts.Spec.Replicas, svc.Name)
		}
		if m[4] != strconv.Itoa(int(tcpPort)) {
			t.Errorf("%q: port %s, the TCP --listen port is %d", l, m[4], tcpPort)
		}
		key := fmt.Sprintf("%s-%d.key", sts.Name, ordinal)
		written, err := os.ReadFile(filepath.Join(out, key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gen.secrets[0].Data[key], written) {
			t.Errorf("Secret key %s is not the key file keygen wrote", key)
		}
		if !strings.Contains(string(stdout), m[5]) {
			t.Errorf("peer id %s is not one keygen printed:\n%s", m[5], stdout)
		}
	}

	// The binary accepts the list: run checks its flags and files before it
	// binds --http, so a port in use stops it right after the list was
	// parsed, before any node starts (or any DNS name is looked up).
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check := exec.CommandContext(ctx, binary, "run", "--bootstrap-file", filepath.Join(out, "bootstrap.txt"),
		"--http", busy.Addr().String(), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--identity", filepath.Join(t.TempDir(), "key"), "--data-dir", t.TempDir())
	res, _ := check.CombinedOutput()
	if check.ProcessState == nil || check.ProcessState.ExitCode() != 2 || !strings.Contains(string(res), "--http "+busy.Addr().String()) {
		t.Errorf("resilient-dht run with the generated bootstrap list did not stop at the busy --http port, as it does once the list is accepted:\n%s", res)
	}
}

// dockerfile is the parsed Dockerfile: its stages' instructions.
type stage struct {
	from  string
	instr [][2]string // instruction, rest of the line
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`\\\n`).ReplaceAllString(string(data), " ")
	var stages []stage
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		ins, rest, _ := strings.Cut(l, " ")
		ins = strings.ToUpper(ins)
		if ins == "FROM" {
			stages = append(stages, stage{from: strings.Fields(rest)[0]})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before FROM", ins)
		}
		s := &stages[len(stages)-1]
		s.instr = append(s.instr, [2]string{ins, strings.TrimSpace(rest)})
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stage(s): want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if final.from != "scratch" && !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s: want scratch or distroless static", final.from)
	}
	// The builder's Go is the one go.mod asks for.
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goLine == nil || !strings.HasPrefix(build.from, "golang:"+string(goLine[1])) {
		t.Errorf("build stage FROM %s; go.mod wants Go %s", build.from, goLine[1])
	}
	var buildsStatic bool
	for _, in := range build.instr {
		if in[0] == "RUN" && strings.Contains(in[1], "CGO_ENABLED=0") && strings.Contains(in[1], "go build") && strings.Contains(in[1], "./cmd/resilient-dht") {
			buildsStatic = true
		}
	}
	if !buildsStatic {
		t.Error("no RUN CGO_ENABLED=0 go build ... ./cmd/resilient-dht in the build stage")
	}

	var user, volume string
	var entrypoint, cmd []string
	copied := map[string]bool{}
	for _, in := range final.instr {
		switch in[0] {
		case "USER":
			user = in[1]
		case "VOLUME":
			volume = in[1]
		case "COPY":
			f := strings.Fields(in[1])
			copied[f[len(f)-1]] = true
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in[1]), &entrypoint); err != nil {
				t.Fatalf("ENTRYPOINT not in exec form: %v", err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(in[1]), &cmd); err != nil {
				t.Fatalf("CMD not in exec form: %v", err)
			}
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	if len(entrypoint) != 1 || !copied[entrypoint[0]] {
		t.Errorf("ENTRYPOINT %q is not the binary the final stage copies (%v)", entrypoint, copied)
	}
	args := parseArgs(t, "Dockerfile CMD", cmd, runFlags(t))
	for _, f := range []string{"identity", "data-dir"} {
		if v := one(t, args, f); volume == "" || !under(v, volume) {
			t.Errorf("--%s %s is not under the VOLUME %q", f, v, volume)
		}
	}
	if host, _, err := net.SplitHostPort(one(t, args, "http")); err != nil || host != "0.0.0.0" {
		t.Errorf("--http %s: want 0.0.0.0:<port> so that it is reachable from outside the container", one(t, args, "http"))
	}
}
