#!/usr/bin/env bash
# Installs the system packages the tests need: Debian chromium (e2e) and Mesa's lavapipe Vulkan driver
# from bookworm-backports (WebGPU in Node through Dawn). Idempotent: a no-op when everything is present.
# The backports suite is derived from the machine's own apt source, so no registry host is named here.
set -euo pipefail

need_chromium=0
need_mesa=0
[ -x /usr/bin/chromium ] || need_chromium=1

mesa_ok() {
  # lavapipe from Mesa >= 24 is what gives Dawn an adapter; bookworm's Mesa 22 does not.
  local v
  v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 24
}
mesa_ok || need_mesa=1

if [ "$need_chromium" = 0 ] && [ "$need_mesa" = 0 ]; then
  echo "setup-system: chromium and Mesa lavapipe ($(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)) present"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "setup-system: missing packages; run as root:" >&2
  [ "$need_chromium" = 1 ] && echo "  apt-get install -y chromium fonts-dejavu-core" >&2
  [ "$need_mesa" = 1 ] && echo "  apt-get install -y -t bookworm-backports mesa-vulkan-drivers libvulkan1" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ "$need_mesa" = 1 ]; then
  # Derive a bookworm-backports source from the first existing Debian source (deb822 or one-line format).
  bp=/etc/apt/sources.list.d/lora2-backports.sources
  if [ ! -f "$bp" ]; then
    uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
      uri=$(awk '$1=="deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    if [ -z "$uri" ]; then
      echo "setup-system: cannot find a Debian apt source to derive bookworm-backports from" >&2
      exit 1
    fi
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" >"$bp"
    echo "setup-system: added bookworm-backports from $uri"
  fi
fi

apt-get update -qq
pkgs=()
[ "$need_chromium" = 1 ] && pkgs+=(chromium fonts-dejavu-core)
if [ "${#pkgs[@]}" -gt 0 ]; then apt-get install -y -qq --no-install-recommends "${pkgs[@]}"; fi
if [ "$need_mesa" = 1 ]; then
  apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers libvulkan1
fi
echo "setup-system: done (mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))"
