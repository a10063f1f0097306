#!/usr/bin/env bash
# The CPU image's cluster in containers: builds an image from a debootstrap root filesystem (base
# images cannot be pulled here) with this build's `ember` and docker/entrypoint.sh, then runs a
# scheduler and three workers as podman containers in three network namespaces, runs a job,
# stops and restarts a worker container, checks that three workers are alive again and the
# health checks pass, and runs a job again. Exit status 77 (ctest: skipped) with the reason when
# podman, debootstrap or a Debian mirror is missing, and unless EMBER_TEST_PODMAN=1: it takes
# minutes (a debootstrap the first time), so the default test run leaves it out.
#
#   tests/deploy/podman_cluster.sh BUILD_DIR SOURCE_DIR WORK_DIR
#
# ../shared/TOOLCHAIN.md: podman 4.3 runs containers here only with raised ulimits and inside a
# private mount namespace with the cgroup v2 mount unmounted (crun refuses the hybrid layout).
set -euo pipefail

skip() {
  echo "SKIPPED: $*"
  exit 77
}

build_dir=$(realpath "${1:?usage: podman_cluster.sh BUILD_DIR SOURCE_DIR WORK_DIR}")
source_dir=$(realpath "${2:?}")
work=${3:?}
mkdir -p "$work"
work=$(realpath "$work")
ember=$build_dir/cli/ember
image=localhost/ember:cpu-debootstrap-test
ulimits=(--ulimit nofile=20000:20000 --ulimit nproc=20000:20000)

if [ "${EMBER_PODMAN_INSIDE:-}" != 1 ]; then
  [ "${EMBER_TEST_PODMAN:-}" = 1 ] || skip "opt-in: set EMBER_TEST_PODMAN=1 to build the image and run the cluster in podman"
  [ "$(id -u)" = 0 ] || skip "needs root (network namespaces, debootstrap, rootful podman)"
  for tool in podman debootstrap ip unshare; do
    command -v "$tool" > /dev/null || skip "$tool is not installed (apt-get install podman debootstrap)"
  done
  [ -x "$ember" ] || { echo "no ember executable at $ember" >&2 && exit 1; }

  # The Debian 12 runtime packages Dockerfile.cpu installs, debootstrapped once per work folder.
  base=$work/rootfs-base
  if [ ! -e "$base/.complete" ]; then
    rm -rf "$base"
    timeout 600 debootstrap --variant=minbase \
      --include=libucx0,libspdlog1.10,libfmt9,libzstd1,libxxhash0,libgomp1,libnuma1 \
      bookworm "$base" "${EMBER_DEBIAN_MIRROR:-http://deb.debian.org/debian}" \
      > "$work/debootstrap.log" 2>&1 ||
      skip "debootstrap failed (no Debian mirror?): $(tail -n 3 "$work/debootstrap.log")"
    touch "$base/.complete"
  fi
  # The runtime stage of Dockerfile.cpu, with this build's executable and libraries.
  rootfs=$work/rootfs
  rm -rf "$rootfs"
  cp -a "$base" "$rootfs"
  install -m 0755 "$ember" "$rootfs/usr/local/bin/ember"
  cp -L "$build_dir"/*/libember_*.so "$rootfs/usr/local/lib/"
  install -m 0755 "$source_dir/docker/entrypoint.sh" "$rootfs/usr/local/bin/entrypoint.sh"
  mkdir -p "$rootfs/usr/local/share/ember"
  cp -r "$source_dir/data" "$rootfs/usr/local/share/ember/"
  chroot "$rootfs" sh -c 'useradd --system --uid 10001 --user-group --home-dir /var/lib/ember \
    --shell /usr/sbin/nologin ember 2> /dev/null; mkdir -p /var/lib/ember &&
    chown ember:ember /var/lib/ember && ldconfig'
  tar -C "$rootfs" -c . | podman import --quiet \
    --change 'USER ember' --change 'WORKDIR /var/lib/ember' \
    --change 'ENV EMBER_LISTEN=0.0.0.0:4242 EMBER_DATA=/var/lib/ember EMBER_BACKEND=cpu' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]' --change 'CMD ["scheduler"]' \
    - "$image" > /dev/null
  rm -rf "$rootfs"
  EMBER_PODMAN_INSIDE=1 exec unshare -m "$0" "$@"
fi

# ---- inside a private mount namespace ---------------------------------------------------------
if mount | grep -q ' /sys/fs/cgroup/unified type cgroup2'; then umount /sys/fs/cgroup/unified; fi

p=emp$$
token=$work/token
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$token"
chmod 0644 "$token"  # the containers' user (uid 10001) reads it
scheduler=10.78.0.1:4242
containers=()

cleanup() {
  local rc=$?
  for c in "${containers[@]}"; do podman rm -f -t 0 "$c" > /dev/null 2>&1 || true; done
  podman rmi -f "$image" > /dev/null 2>&1 || true
  for n in a b c; do ip netns del "$p$n" 2> /dev/null || true; done
  exit "$rc"
}
trap cleanup EXIT INT TERM

for n in a b c; do
  ip netns add "$p$n"
  ip -n "$p$n" link set lo up
done
ip -n "${p}a" link add br0 type bridge
ip -n "${p}a" addr add 10.78.0.1/24 dev br0
ip -n "${p}a" link set br0 up
host=2
for n in b c; do
  ip link add "v$n" netns "${p}a" type veth peer name veth0 netns "$p$n"
  ip -n "${p}a" link set "v$n" master br0 up
  ip -n "$p$n" addr add "10.78.0.$host/24" dev veth0
  ip -n "$p$n" link set veth0 up
  host=$((host + 1))
done

# A container on host $1 named $2 (the rest: podman run's flags and the command).
start() {
  local n=$1 name=$2
  shift 2
  podman run -d --name "$name" --network "ns:/run/netns/$p$n" "${ulimits[@]}" \
    -v "$token:/run/secrets/ember_token:ro" -e EMBER_TOKEN_FILE=/run/secrets/ember_token \
    "$@" > /dev/null
  containers+=("$name")
}

alive() {
  ip netns exec "${p}a" "$ember" status --json --scheduler "$scheduler" --token-file "$token" \
    2> /dev/null | grep -c '"alive": true' || true
}

wait_alive() {
  local want=$1 deadline=$((SECONDS + $2))
  until [ "$(alive)" = "$want" ]; do
    if ((SECONDS > deadline)); then
      echo "FAILED: $(alive) live workers, not $want, after $2 s" >&2
      for c in "${containers[@]}"; do
        echo "--- $c" >&2
        podman logs "$c" >&2 || true
      done
      exit 1
    fi
    sleep 0.2
  done
}

job() {
  local out
  out=$(podman run --rm --network "ns:/run/netns/${p}$1" "${ulimits[@]}" \
    -v "$token:/run/secrets/ember_token:ro" "$image" \
    ember run wordcount --input /usr/local/share/ember/data/garden.txt --scheduler "$scheduler" \
    --token-file /run/secrets/ember_token --quiet --top 3)
  echo "$out"
  grep -q "on 3 cpu worker(s) of $scheduler" <<< "$out" || { echo "FAILED: the job" >&2 && exit 1; }
  grep -q "^the *58" <<< "$out" || { echo "FAILED: wrong counts" >&2 && exit 1; }
}

started=$SECONDS
start a "$p-scheduler" -e EMBER_LISTEN="$scheduler" -e EMBER_DATA=/var/lib/ember/scheduler \
  -e EMBER_HEARTBEAT_MS=100 "$image" scheduler
worker_hosts=(a b c)
for i in 0 1 2; do
  start "${worker_hosts[i]}" "$p-worker$i" -e EMBER_SCHEDULER="$scheduler" \
    -e EMBER_WORKER_NAME="worker$i" -e EMBER_SLOTS=1 -e EMBER_CPU_THREADS=1 "$image" worker
done
wait_alive 3 30
job c

podman stop -t 10 "$p-worker1" > /dev/null  # SIGTERM, as a container runtime stops it
wait_alive 2 15
podman start "$p-worker1" > /dev/null
wait_alive 3 30
# The images' HEALTHCHECK command: `health` finds the role from the container's main process.
podman exec "$p-worker1" /usr/local/bin/entrypoint.sh health
podman exec "$p-scheduler" /usr/local/bin/entrypoint.sh health
if podman exec -e EMBER_WORKER_NAME=no-such-worker "$p-worker1" /usr/local/bin/entrypoint.sh \
  health 2> /dev/null; then
  echo "FAILED: the health check passed for a worker that is not there" >&2
  exit 1
fi
job b
echo "PASSED: scheduler and 3 worker containers, a worker restarted, in $((SECONDS - started)) s"
