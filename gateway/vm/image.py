"""Build a tiny Linux guest for hostclock: a Debian 12 kernel and an initramfs
with busybox, chronyd and the virtio_net modules (the VM tests, the drift
experiment ``python -m bench.drift`` and the demo boot it).

The guest's /init (``gateway/vm/guest/init``) brings up eth0, takes a DHCP
lease (asking for option 42, the NTP server) and then runs the mode its kernel
command line selects (see ``gateway.vm.scenario``): by default it measures its
clock against that server with ``chronyd -Q``, steps the *guest* clock with
``chronyd -q`` and measures again, printing ``HOSTCLOCK-RESULT`` lines on the
serial console.

Where things come from:

* kernel: ``apt-get download linux-image-<abi>-amd64`` (the package that
  ``linux-image-amd64`` depends on), unpacked with ``dpkg-deb --fsys-tarfile``;
  only ``vmlinuz`` and the virtio_net modules are taken.
* busybox: ``apt-get download busybox-static`` (static, no libraries).
* chronyd: ``apt-get download chrony``.  Its shared libraries are copied from
  the HOST (the paths ``ldd`` prints for the downloaded chronyd).  That is
  simpler than downloading a dozen library packages, and on Debian 12 the
  host's libraries are the ones chrony is built against.  The libraries' SHA-256
  is part of the cache key, so a host library upgrade rebuilds the image.

Output: ``<cache>/<key>/vmlinuz`` and ``<cache>/<key>/initramfs.cpio.gz``, the
cache defaulting to ``~/.cache/hostclock-vm`` (``$HOSTCLOCK_VM_CACHE``
overrides it).  The key hashes the three package versions, the copied
libraries and the guest scripts, so an image is rebuilt only when one of them
changes.  The .debs are kept in ``<cache>/debs``.

CLI: ``python -m gateway.vm.image [--out DIR]`` prints the two paths.

Python API: ``build(cache_dir, progress=...)`` builds or finds the image (the
callback gets a ``BuildProgress`` per step); ``find_image(cache_dir)`` returns
an image already in the cache without asking apt (or None).

Needs on the host: apt (with ``apt-get update`` done), dpkg-deb, ldd.  The
cpio archive is written in pure Python (newc format), no ``cpio`` needed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

# Bump when the layout of the image changes in a way the key would not see.
FORMAT = 2

KERNEL_META_PACKAGE = "linux-image-amd64"
# virtio_net and what it needs, in insmod order (there is no modules.dep).
MODULES = (
    "failover",
    "net_failover",
    "virtio_ring",
    "virtio",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_net",
)
CMDLINE = "console=ttyS0 quiet panic=-1"
GUEST_DIR = Path(__file__).resolve().parent / "guest"
# busybox applets the guest scripts use; an image whose busybox lacks one is refused.
REQUIRED_APPLETS = ("sh", "mount", "insmod", "ip", "udhcpc", "sed", "cut", "tr", "cat",
                    "head", "tail", "sleep", "poweroff", "adjtimex", "mkfifo")
APT_TIMEOUT = 300
TOOL_TIMEOUT = 120


class BuildError(RuntimeError):
    """The image cannot be built."""


class PackagesUnavailable(BuildError):
    """apt cannot give us the packages (no apt lists, no archive reachable)."""


@dataclasses.dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    cmdline: str
    key: str
    versions: dict

    def as_dict(self) -> dict:
        return {
            "kernel": str(self.kernel),
            "initrd": str(self.initrd),
            "cmdline": self.cmdline,
            "key": self.key,
            "versions": self.versions,
        }


def default_cache_dir() -> Path:
    env = os.environ.get("HOSTCLOCK_VM_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "hostclock-vm"


# --------------------------------------------------------------------------
# newc cpio writer
# --------------------------------------------------------------------------


class CpioWriter:
    """Write a newc ("070701") cpio archive, as the kernel's initramfs wants.

    Entries are written as added; parent directories must be added first
    (``add_dir`` does it with ``parents=True``).  All files are owned by root
    and get a fixed mtime, so the archive is reproducible.
    """

    def __init__(self, out: io.BufferedIOBase, mtime: int = 0):
        self._out = out
        self._ino = 1
        self._mtime = mtime
        self._dirs: set[str] = {""}
        self._closed = False

    @staticmethod
    def _norm(name: str) -> str:
        name = name.strip("/")
        if not name or ".." in name.split("/"):
            raise ValueError(f"bad archive path {name!r}")
        return name

    def _entry(self, name: str, mode: int, data: bytes = b"", *, nlink: int = 1,
               rdev: tuple[int, int] = (0, 0)) -> None:
        if self._closed:
            raise ValueError("archive already closed")
        encoded = name.encode() + b"\0"
        fields = (
            self._ino, mode, 0, 0, nlink, self._mtime, len(data),
            0, 0, rdev[0], rdev[1], len(encoded), 0,
        )
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header)
        self._out.write(encoded)
        self._out.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self._out.write(data)
        self._out.write(b"\0" * (-len(data) % 4))

    def _parent(self, name: str) -> None:
        parent = name.rpartition("/")[0]
        if parent not in self._dirs:
            raise ValueError(f"parent directory of {name!r} not added yet")

    def add_dir(self, name: str, mode: int = 0o755, *, parents: bool = True) -> None:
        name = self._norm(name)
        if name in self._dirs:
            return
        parent = name.rpartition("/")[0]
        if parents and parent not in self._dirs:
            self.add_dir(parent, parents=True)
        self._parent(name)
        self._entry(name, stat.S_IFDIR | mode, nlink=2)
        self._dirs.add(name)

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = self._norm(name)
        self._parent(name)
        self._entry(name, stat.S_IFREG | mode, data)

    def add_symlink(self, name: str, target: str) -> None:
        name = self._norm(name)
        self._parent(name)
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        name = self._norm(name)
        self._parent(name)
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def close(self) -> None:
        if not self._closed:
            self._entry("TRAILER!!!", 0, nlink=1)
            self._closed = True


def read_newc(data: bytes) -> list[dict]:
    """Parse a newc archive (for tests): a list of {name, mode, data, rdev}."""
    entries, pos = [], 0
    while True:
        if data[pos:pos + 6] != b"070701":
            raise ValueError(f"bad magic at {pos}")
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        npos = pos + 110
        name = data[npos:npos + namesize - 1].decode()
        dpos = npos + namesize + (-(110 + namesize) % 4)
        body = data[dpos:dpos + filesize]
        pos = dpos + filesize + (-filesize % 4)
        if name == "TRAILER!!!":
            return entries
        entries.append({"name": name, "mode": f[1], "data": body, "rdev": (f[9], f[10])})


# --------------------------------------------------------------------------
# apt / dpkg helpers
# --------------------------------------------------------------------------


def _run(cmd: list[str], *, timeout: float = TOOL_TIMEOUT, cwd: Path | None = None,
         env: dict | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=cwd, env=env)
    except FileNotFoundError as e:
        raise BuildError(f"{cmd[0]} not found: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise BuildError(f"{' '.join(cmd)} timed out after {timeout} s") from e
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def resolve_kernel_package() -> str:
    """The exact kernel image package, e.g. linux-image-6.1.0-56-amd64."""
    try:
        out = _run(["apt-cache", "depends", KERNEL_META_PACKAGE])
    except BuildError as e:
        raise PackagesUnavailable(str(e)) from e
    names = re.findall(r"Depends:\s*(linux-image-[0-9][\w.+-]*-amd64)\b", out)
    if not names:
        raise PackagesUnavailable(
            f"apt-cache depends {KERNEL_META_PACKAGE} names no kernel "
            f"(run apt-get update first?): {out.strip()!r}")
    return names[0]


def candidate_versions(*packages: str) -> dict[str, str]:
    """Candidate versions of PACKAGES, in one apt-cache call (each costs ~0.5 s)."""
    try:
        out = _run(["apt-cache", "show", "--no-all-versions", *packages])
    except BuildError as e:
        raise PackagesUnavailable(f"{e} (run apt-get update first?)") from e
    found = {}
    for stanza in out.split("\n\n"):
        pkg = re.search(r"^Package:\s*(\S+)", stanza, re.M)
        ver = re.search(r"^Version:\s*(\S+)", stanza, re.M)
        if pkg and ver:
            found.setdefault(pkg.group(1), ver.group(1))
    missing = [p for p in packages if p not in found]
    if missing:
        raise PackagesUnavailable(
            f"no candidate version of {missing} (run apt-get update first?)")
    return {p: found[p] for p in packages}


def _deb_field(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field]).strip()


def download_deb(package: str, version: str, debs: Path) -> Path:
    """apt-get download PACKAGE=VERSION into DEBS, reusing a file already there."""
    debs.mkdir(parents=True, exist_ok=True)
    for deb in debs.glob(f"{package}_*.deb"):
        try:
            if _deb_field(deb, "Package") == package and _deb_field(deb, "Version") == version:
                return deb
        except BuildError:
            pass
        deb.unlink(missing_ok=True)  # another version, or a broken file
    with tempfile.TemporaryDirectory(dir=debs, prefix=".dl-") as tmp:
        # The _apt sandbox user cannot write into root's cache: download as root.
        try:
            _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
                  f"{package}={version}"], cwd=Path(tmp), timeout=APT_TIMEOUT)
        except BuildError as e:
            raise PackagesUnavailable(str(e)) from e
        got = list(Path(tmp).glob("*.deb"))
        if len(got) != 1:
            raise BuildError(f"apt-get download {package} gave {got}")
        dest = debs / got[0].name
        os.replace(got[0], dest)
    return dest


def deb_members(deb: Path, want) -> dict[str, bytes]:
    """Files of DEB's data archive for which want(path) is true (path without './')."""
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and want(name):
                    found[name] = tar.extractfile(member).read()
    finally:
        try:
            proc.stdout.close()
            _, err = proc.communicate(timeout=TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise BuildError(f"dpkg-deb --fsys-tarfile {deb} timed out")
    if proc.returncode != 0:
        raise BuildError(f"dpkg-deb --fsys-tarfile {deb} failed: {err.decode(errors='replace')}")
    return found


def host_libraries(binary: Path) -> list[Path]:
    """The shared libraries (and the loader) that ldd resolves for BINARY on this host."""
    out = _run(["ldd", str(binary)])
    libs = []
    for line in out.splitlines():
        line = line.strip()
        m = re.match(r"\S+\s+=>\s+(/\S+)\s+\(", line) or re.match(r"(/\S+)\s+\(", line)
        if m:
            libs.append(Path(m.group(1)))
        elif "not found" in line:
            raise BuildError(f"ldd {binary}: {line}")
    if not libs:
        raise BuildError(f"ldd {binary} found no libraries: {out!r}")
    return libs


# --------------------------------------------------------------------------
# the build
# --------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _guest_scripts() -> dict[str, bytes]:
    return {
        "init": (GUEST_DIR / "init").read_bytes(),
        "etc/hostclock/udhcpc.sh": (GUEST_DIR / "udhcpc.sh").read_bytes(),
    }


def _module_blob(name: str, files: dict[str, bytes]) -> bytes | None:
    for path, data in files.items():
        base = path.rsplit("/", 1)[-1]
        if base == f"{name}.ko":
            return data
        if base == f"{name}.ko.xz":
            return lzma.decompress(data)
    return None


def _busybox_applets(busybox: bytes, tmp: Path) -> list[str]:
    exe = tmp / "busybox"
    exe.write_bytes(busybox)
    exe.chmod(0o755)
    out = _run([str(exe), "--list-full"])
    return [line.strip() for line in out.splitlines() if line.strip()]


def _write_initramfs(dest: Path, *, busybox: bytes, applets: list[str], chronyd: bytes,
                     libs: dict[str, bytes], modules: list[tuple[str, bytes]],
                     scripts: dict[str, bytes]) -> None:
    raw = io.BytesIO()
    w = CpioWriter(raw)
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc/hostclock", "lib/modules",
              "proc", "sys", "dev", "run", "tmp", "var", "root"):
        w.add_dir(d)
    w.add_symlink("var/run", "/run")
    # The kernel opens /dev/console for /init before devtmpfs is mounted.
    w.add_chardev("dev/console", 5, 1)
    w.add_chardev("dev/null", 1, 3, 0o666)
    w.add_file("bin/busybox", busybox, 0o755)
    for applet in applets:
        if applet != "bin/busybox" and applet.count("/") >= 1:
            w.add_dir(applet.rpartition("/")[0])
            w.add_symlink(applet, "/bin/busybox")
    w.add_file("usr/sbin/chronyd", chronyd, 0o755)
    for path, data in sorted(libs.items()):
        w.add_dir(path.rpartition("/")[0])
        w.add_file(path, data, 0o755)
    for name, data in modules:
        w.add_file(f"lib/modules/{name}.ko", data)
    w.add_file("etc/hostclock/modules", "".join(f"{n}\n" for n, _ in modules).encode())
    w.add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    w.add_file("etc/group", b"root:x:0:\n")
    w.add_file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files\n")
    for path, data in scripts.items():
        w.add_file(path, data, 0o755)
    w.close()
    with open(dest, "wb") as fh:
        with gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0) as gz:
            gz.write(raw.getvalue())


def _prune_old_images(cache: Path, keep: Path, log, min_age: float = 86400.0) -> None:
    """Remove images of other keys not used for MIN_AGE s (a day: another
    checkout with other guest scripts may still be booting its own)."""
    now = time.time()
    for d in cache.iterdir():
        if d != keep and d.is_dir() and (d / "image.json").is_file():
            if now - (d / "image.json").stat().st_mtime > min_age:
                log(f"removing old image {d}")
                shutil.rmtree(d, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class BuildProgress:
    """One step of ``build``: STEP of TOTAL, with a line for a person."""

    step: int
    total: int
    message: str


BUILD_STEPS = 6


def _scripts_digest(scripts: dict[str, bytes]) -> str:
    return _sha256(json.dumps({p: _sha256(d) for p, d in sorted(scripts.items())},
                              sort_keys=True).encode())[:16]


def _image_from_dir(d: Path) -> GuestImage | None:
    try:
        meta = json.loads((d / "image.json").read_text())
    except (OSError, ValueError):
        return None
    image = GuestImage(d / "vmlinuz", d / "initramfs.cpio.gz", meta.get("cmdline", CMDLINE),
                       meta.get("key", d.name), meta.get("versions", {}))
    if not (image.kernel.is_file() and image.initrd.is_file()):
        return None
    if meta.get("format") != FORMAT or meta.get("scripts") != _scripts_digest(_guest_scripts()):
        return None
    return image


def find_image(cache_dir: Path | None = None) -> GuestImage | None:
    """An image already in the cache whose guest scripts are this checkout's,
    without asking apt (the newest if several); None if there is none."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if not cache.is_dir():
        return None
    found = [(d.stat().st_mtime, img) for d in cache.iterdir()
             if d.is_dir() and (img := _image_from_dir(d)) is not None]
    return max(found, key=lambda pair: pair[0])[1] if found else None


def build(cache_dir: Path | None = None, *, log=None, progress=None) -> GuestImage:
    """Return the guest image, building it (and downloading .debs) if needed.

    LOG(str) gets free-form lines; PROGRESS(BuildProgress) one call per step
    (resolve, download, libraries, cached-or-kernel, busybox, write), the last
    with step == total."""
    log = log or (lambda msg: None)
    steps = [0]

    def advance(message: str, *, last: bool = False) -> None:
        steps[0] = BUILD_STEPS if last else min(steps[0] + 1, BUILD_STEPS - 1)
        log(message)
        if progress is not None:
            progress(BuildProgress(steps[0], BUILD_STEPS, message))

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    kernel_pkg = resolve_kernel_package()
    versions = candidate_versions(kernel_pkg, "busybox-static", "chrony")
    scripts = _guest_scripts()
    advance(f"packages: {', '.join(f'{p} {v}' for p, v in versions.items())}")

    with _locked(cache / ".lock"):
        debs = {}
        for p, v in versions.items():
            debs[p] = download_deb(p, v, cache / "debs")
        advance(f"packages downloaded to {cache / 'debs'}")
        chrony_files = deb_members(debs["chrony"], lambda n: n == "usr/sbin/chronyd")
        if "usr/sbin/chronyd" not in chrony_files:
            raise BuildError(f"{debs['chrony']} has no usr/sbin/chronyd")
        chronyd = chrony_files["usr/sbin/chronyd"]
        with tempfile.TemporaryDirectory(dir=cache, prefix=".tmp-") as tmp_s:
            tmp = Path(tmp_s)
            exe = tmp / "chronyd"
            exe.write_bytes(chronyd)
            exe.chmod(0o755)
            lib_paths = host_libraries(exe)
        libs = {str(p).lstrip("/"): p.read_bytes() for p in lib_paths}
        advance(f"chronyd's {len(libs)} libraries found on the host")

        key_material = json.dumps({
            "format": FORMAT,
            "versions": versions,
            "libs": {p: _sha256(d) for p, d in sorted(libs.items())},
            "scripts": {p: _sha256(d) for p, d in sorted(scripts.items())},
            "modules": MODULES,
            "cmdline": CMDLINE,
        }, sort_keys=True).encode()
        key = f"{kernel_pkg.removeprefix('linux-image-')}-{_sha256(key_material)[:16]}"
        out = cache / key
        image = GuestImage(out / "vmlinuz", out / "initramfs.cpio.gz", CMDLINE, key, versions)
        if image.kernel.is_file() and image.initrd.is_file():
            (out / "image.json").touch()  # in use: not pruned by another checkout's build
            advance(f"guest image cached: {out} ({time.monotonic() - t0:.1f} s)", last=True)
            return image

        kernel_files = deb_members(
            debs[kernel_pkg],
            lambda n: (n.startswith("boot/vmlinuz-")
                       or (n.startswith("lib/modules/")
                           and re.search(r"/(%s)\.ko(\.xz)?$" % "|".join(MODULES), n))))
        vmlinuz = [d for n, d in kernel_files.items() if n.startswith("boot/vmlinuz-")]
        if len(vmlinuz) != 1:
            raise BuildError(f"{debs[kernel_pkg]}: expected one boot/vmlinuz-*, got {len(vmlinuz)}")
        # A module that is not there as .ko is assumed built into the kernel.
        modules = [(m, blob) for m in MODULES
                   if (blob := _module_blob(m, kernel_files)) is not None]
        if not any(m == "virtio_net" for m, _ in modules):
            log("note: virtio_net.ko not in the package; assuming it is built in")
        advance(f"building guest image {key}: kernel and {len(modules)} modules taken")
        bb = deb_members(debs["busybox-static"], lambda n: n == "bin/busybox")
        if "bin/busybox" not in bb:
            raise BuildError(f"{debs['busybox-static']} has no bin/busybox")

        staging = Path(tempfile.mkdtemp(dir=cache, prefix=".build-"))
        try:
            applets = _busybox_applets(bb["bin/busybox"], staging)
            (staging / "busybox").unlink()
            names = {a.rsplit("/", 1)[-1] for a in applets}
            missing = [a for a in REQUIRED_APPLETS if a not in names]
            if missing:
                raise BuildError(f"{debs['busybox-static']}: busybox has no {', '.join(missing)} "
                                 "applet (the guest scripts need it)")
            advance(f"busybox: {len(applets)} applets")
            (staging / "vmlinuz").write_bytes(vmlinuz[0])
            _write_initramfs(staging / "initramfs.cpio.gz", busybox=bb["bin/busybox"],
                             applets=applets, chronyd=chronyd, libs=libs,
                             modules=modules, scripts=scripts)
            (staging / "image.json").write_text(json.dumps({
                "format": FORMAT, "key": key, "versions": versions, "cmdline": CMDLINE,
                "modules": [m for m, _ in modules], "libs": sorted(libs),
                "scripts": _scripts_digest(scripts),
            }, indent=2) + "\n")
            if out.exists():
                shutil.rmtree(out)
            os.replace(staging, out)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        _prune_old_images(cache, keep=out, log=log)
        advance(f"built {out} in {time.monotonic() - t0:.1f} s "
                f"(initramfs {image.initrd.stat().st_size // 1024} KiB)", last=True)
        return image


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gateway.vm.image", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help=f"cache directory (default {default_cache_dir()})")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)
    try:
        image = build(args.out, log=lambda m: print(m, file=sys.stderr))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(image.as_dict(), indent=2))
    else:
        print(f"kernel={image.kernel}")
        print(f"initrd={image.initrd}")
        print(f"cmdline={image.cmdline}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
