#!/usr/bin/env bash
# Make sure an OpenCL loader (libOpenCL.so, needed to link the `ocl` crate), its headers and at
# least one driver are installed. On Debian/Ubuntu, installs the PoCL CPU driver as the embedded
# default device: pocl-opencl-icd ocl-icd-opencl-dev clinfo (with sudo when not root).
set -euo pipefail

packages="pocl-opencl-icd ocl-icd-opencl-dev clinfo"

have_loader() { ldconfig -p 2>/dev/null | grep -q 'libOpenCL\.so (' ; }
have_driver() { ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1; }
have_headers() { [ -e /usr/include/CL/cl.h ]; }

if have_loader && have_driver && have_headers; then
  exit 0
fi

echo "mloracle: OpenCL loader, headers or driver missing; installing: $packages" >&2
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "mloracle: not root and no sudo: install $packages yourself" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  $sudo apt-get install -y -q $packages
else
  echo "mloracle: no apt-get here. Install an OpenCL ICD loader with its development files" >&2
  echo "  (libOpenCL.so, CL/cl.h) and an OpenCL driver; on Debian/Ubuntu the packages are:" >&2
  echo "  $packages" >&2
  echo "  (Fedora: ocl-icd-devel pocl clinfo; Arch: ocl-icd pocl clinfo; macOS ships OpenCL.)" >&2
  exit 1
fi

if ! (have_loader && have_driver); then
  echo "mloracle: installation finished but no OpenCL loader/driver found" >&2
  exit 1
fi
