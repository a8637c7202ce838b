#!/bin/sh
# bootstrap-peers.sh OUTDIR [N]
#
# Creates the identities of the fleet's first N pods (default 3), which every
# node bootstraps from, and writes OUTDIR/bootstrap-peers.yaml: a Secret holding
# their keys (the StatefulSet's init container copies resilient-dht-<i>.key into
# pod i's volume on its first start) and the ConfigMap with the bootstrap list,
# /dns4/resilient-dht-<i>.resilient-dht/tcp/4001/p2p/<peer id>, one per line.
#
#	deploy/bootstrap-peers.sh ./fleet-keys
#	kubectl apply -f ./fleet-keys/bootstrap-peers.yaml -f deploy/k8s/
#
# Needs resilient-dht on PATH (go build ./cmd/resilient-dht), or its path in
# $RESILIENT_DHT. Keep OUTDIR private: it holds private keys.
set -eu

out=${1:?usage: bootstrap-peers.sh OUTDIR [N]}
n=${2:-3}
bin=${RESILIENT_DHT:-resilient-dht}
sts=resilient-dht # StatefulSet name, deploy/k8s/statefulset.yaml
svc=resilient-dht # headless Service name, deploy/k8s/service.yaml
port=4001         # the TCP --listen port

mkdir -p "$out"
chmod 700 "$out"
list="$out/bootstrap.txt"
: >"$list"
i=0
while [ "$i" -lt "$n" ]; do
	key="$out/$sts-$i.key"
	id=$("$bin" keygen --out "$key" | sed -n 's/^peer id //p')
	[ -n "$id" ] || { echo "bootstrap-peers.sh: no peer id from keygen" >&2; exit 1; }
	echo "/dns4/$sts-$i.$svc/tcp/$port/p2p/$id" >>"$list"
	i=$((i + 1))
done

{
	echo "apiVersion: v1"
	echo "kind: Secret"
	echo "metadata:"
	echo "  name: resilient-dht-bootstrap-keys"
	echo "type: Opaque"
	echo "data:"
	i=0
	while [ "$i" -lt "$n" ]; do
		echo "  $sts-$i.key: $(base64 <"$out/$sts-$i.key" | tr -d '\n')"
		i=$((i + 1))
	done
	echo "---"
	echo "apiVersion: v1"
	echo "kind: ConfigMap"
	echo "metadata:"
	echo "  name: resilient-dht-bootstrap"
	echo "data:"
	echo "  bootstrap.txt: |"
	sed 's/^/    /' "$list"
} >"$out/bootstrap-peers.yaml"
echo "wrote $out/bootstrap-peers.yaml:"
cat "$list"
