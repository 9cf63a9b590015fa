# shellcheck shell=bash
# image_pod_to_podman (scripts/image-lib.sh): a Deployment it cannot translate faithfully is
# refused with the field named, never run with the field left out. Needs only the .venv's PyYAML.

# A minimal Deployment with one container; $1 is extra YAML for the container, indented 8.
image_translate_deployment() {
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo, namespace: ns1}
spec:
  template:
    spec:
      securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000}
      ${POD_EXTRA:-}
      containers:
      - name: demo
        image: demo:1
        ports: [{containerPort: 8080, name: http}]
        ${1:-}
YAML
}

# Translates the YAML on stdin; messages in TR_OUT, exit code in TR_RC, arguments in TR_ARGS.
image_translate() {
  local dir
  dir="$(mktemp -d "$TEST_TMP/translate.XXXXXX")" || fail "no temporary directory"
  cat >"$dir/in.yaml"
  TR_RC=0
  TR_OUT="$(image_pod_to_podman "$dir/in.yaml" "$dir" 18080 "$dir/args" "$dir/facts" 2>&1)" || TR_RC=$?
  TR_ARGS="$dir/args"
}

test_image_translate_maps_a_minimal_deployment() {
  image_python >/dev/null 2>&1 || skip "no python3 with PyYAML (run make venv)"
  image_translate < <(image_translate_deployment 'env: [{name: A, value: "1"}, {name: P, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]')
  assert_eq "$TR_RC" 0 "exit code ($TR_OUT)"
  assert_eq "$(tr '\n' ' ' <"$TR_ARGS")" "--env A=1 --env P=demo-standin-pod --user 1000:1000 --group-add 1000 --publish 127.0.0.1:18080:8080 --stop-timeout 30 --hostname demo-standin-pod --pull=missing demo:1 " "podman arguments"
}

test_image_translate_refuses_what_it_cannot_translate() {
  image_python >/dev/null 2>&1 || skip "no python3 with PyYAML (run make venv)"
  local extra expect
  while IFS='|' read -r extra expect; do
    image_translate < <(image_translate_deployment "$extra")
    assert_ne "$TR_RC" 0 "exit code for [$extra]"
    [[ "$TR_OUT" == *"$expect"* ]] || fail "for [$extra] expected a message with [$expect], got: $TR_OUT"
  done <<'CASES'
securityContext: {privileged: true}|privileged: true is not translated
securityContext: {procMount: Unmasked}|containers[0].securityContext: procMount not translated
env: [{name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}]|env IP: fieldRef status.podIP is not translated
env: [{name: X, valueFrom: {configMapKeyRef: {name: absent, key: K}}}]|ConfigMap 'absent' is referenced but not among the rendered objects
volumeMounts: [{name: h, mountPath: /h}]|volumeMount h: no such volume
livenessProbe: {exec: {command: [true]}}|livenessProbe: only httpGet probes are translated
securityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}|seccompProfile Localhost is not translated
CASES
  image_translate < <(POD_EXTRA='volumes: [{name: h, hostPath: {path: /etc}}]' image_translate_deployment 'volumeMounts: [{name: h, mountPath: /h}]')
  assert_ne "$TR_RC" 0 "exit code for a hostPath volume"
  [[ "$TR_OUT" == *"volume h: only secret, configMap and emptyDir volumes are translated"* ]] || fail "hostPath: $TR_OUT"
}
