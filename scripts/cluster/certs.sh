# The cluster's PKI (sourced by up.sh): one CA for the components and the clients, a front-proxy
# CA for the aggregation layer (metrics.k8s.io), the service-account key pair. openssl only.
# shellcheck shell=bash source-path=SCRIPTDIR

# cert NAME CN [O] [SAN]: a key and a certificate signed by the CA named by $CA (ca or front-proxy-ca).
cert() {
  local name="$1" cn="$2" org="${3:-}" san="${4:-}" subj="/CN=$2" ext="$PKI/$1.ext"
  [[ -n "$org" ]] && subj="/O=$org/CN=$cn"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [[ -n "$san" ]]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$CA.crt" -CAkey "$PKI/$CA.key" -CAcreateserial \
    -days 30 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/$1.key" -out "$PKI/$1.crt" -days 30 \
    -subj "/CN=$2" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# kubeconfig FILE USER-CERT SERVER: a kubeconfig whose one context is $CONTEXT.
kubeconfig() {
  local file="$1" user="$2" server="$3"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT
  cluster:
    certificate-authority: $PKI/ca.crt
    server: $server
users:
- name: $user
  user:
    client-certificate: $PKI/$user.crt
    client-key: $PKI/$user.key
contexts:
- name: $CONTEXT
  context:
    cluster: $CONTEXT
    user: $user
current-context: $CONTEXT
KUBECONFIG
}

# pki_all: the whole PKI of a cluster of NODES nodes (the API server, metrics-server and the
# control plane on node 1).
pki_all() {
  mkdir -p "$PKI"; chmod 700 "$PKI"
  ca ca kco-ca
  ca front-proxy-ca kco-front-proxy-ca
  CA=ca
  local node1 n name server who
  node1="$(node_ip 1)"
  cert apiserver kube-apiserver "" "IP:$node1,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert etcd etcd "" "IP:127.0.0.1,DNS:localhost"
  cert apiserver-etcd-client kube-apiserver-etcd-client
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  for ((n = 1; n <= NODES; n++)); do
    name="$(node_name "$n")"
    cert "kubelet-serving-$name" "system:node:$name" system:nodes "IP:$(node_ip "$n")"
    cert "kubelet-$name" "system:node:$name" system:nodes
  done
  cert admin kco-admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy
  cert kube-router system:kube-router
  cert metrics-server system:metrics-server "" "DNS:metrics-server.kube-system.svc,IP:$node1"
  CA=front-proxy-ca
  cert front-proxy-client front-proxy-client
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  server="https://$node1:$API_PORT"
  for who in admin controller-manager scheduler kube-proxy kube-router metrics-server; do
    kubeconfig "$STATE/$who.kubeconfig" "$who" "$server"
  done
  for ((n = 1; n <= NODES; n++)); do
    name="$(node_name "$n")"
    kubeconfig "$STATE/kubelet-$name.kubeconfig" "kubelet-$name" "$server"
  done
}
