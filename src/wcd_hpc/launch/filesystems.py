"""Which filesystem a study's journal lives on, and whether its lock is safe there.

The journal's lock and the claim lock are lock files created with ``open(O_CREAT | O_EXCL)``:
the server decides who created the file, so the lock holds across nodes wherever exclusive
create is atomic on the server. Each write appends under that lock to a file that the writer
opens after taking it; each read opens the file again. So the journal also relies on
close-to-open consistency: a client that opens a file sees what others wrote before closing it.

- Safe: local filesystems (one node only: other nodes do not see them), NFS v3 and v4 with the
  default ``cto``, Lustre, GPFS / Spectrum Scale, BeeGFS, CephFS — exclusive create is a
  metadata-server operation on each.
- Unsafe: NFS v2 (no exclusive create: open(2) says O_EXCL needs NFSv3 or later), NFS mounted
  ``nocto`` (a writer may append at a stale end of file), and FUSE filesystems over SSH or object
  stores (sshfs, s3fs, gcsfuse, rclone, goofys, blobfuse), where exclusive create or append are
  emulated by the client. CIFS/SMB is untested: treated as unsafe.

``wcd-hpc doctor`` reads ``/proc/self/mountinfo`` to name the filesystem of the runs directory
(or the journal) and warns about the unsafe ones; sqlite on any network filesystem is warned
about too (its ``fcntl`` locks are not reliable there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")
#: Shared filesystems on which exclusive create is atomic at the server.
SAFE_SHARED = frozenset({"nfs", "nfs4", "lustre", "gpfs", "beegfs", "ceph", "fuse.ceph"})
#: Filesystems that only this node sees.
LOCAL = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "f2fs"})
#: Client-emulated create/append: the journal's lock cannot be trusted there.
UNSAFE = frozenset(
    {
        "cifs",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.rclone",
        "fuse.goofys",
        "fuse.blobfuse",
        "fuse.blobfuse2",
        "fuse.mountpoint-s3",
    }
)


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``: where, what type, with which options."""

    point: Path
    fstype: str
    options: frozenset[str]


@dataclass(frozen=True)
class Verdict:
    """What the filesystem means for a journal (or sqlite file) kept on it."""

    ok: bool
    detail: str
    fix: str = ""


def _unescape(field: str) -> str:
    r"""Mount points escape space, tab, newline and backslash as octal (``\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    """The mounts of a mountinfo text; lines it cannot read are skipped, not fatal."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 6:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 3:
            continue
        options = set(fields[5].split(","))
        if len(fields) > sep + 3:
            options |= set(fields[sep + 3].split(","))
        mounts.append(Mount(Path(_unescape(fields[4])), fields[sep + 1], frozenset(options)))
    return mounts


def mount_of(path: Path, mounts: list[Mount]) -> Mount | None:
    """The mount that holds ``path`` (the longest mount point above it; the last one wins when
    two are mounted on the same point, as the kernel stacks them)."""
    target = path.resolve()
    holding = [m for m in mounts if target == m.point or m.point in target.parents]
    # max() keeps the first of equal keys; reversed so a later mount on the same point wins.
    return max(reversed(holding), key=lambda m: len(m.point.parts), default=None)


def _nfs_version(options: frozenset[str]) -> str:
    for option in options:
        for key in ("vers=", "nfsvers="):
            if option.startswith(key):
                return option.removeprefix(key)
    return ""


def judge(mount: Mount, family: str) -> Verdict:
    """Whether a ``family`` storage (``journal`` or ``sqlite``) is safe on ``mount``."""
    kind, where = mount.fstype, f"{mount.fstype} at {mount.point}"
    shared = kind in SAFE_SHARED or kind in UNSAFE or kind.startswith("fuse.")
    if family == "sqlite" and shared:
        return Verdict(
            False,
            f"sqlite on {where}: its file locks are not reliable on a network filesystem",
            "use the journal (storage: journal) or PostgreSQL",
        )
    if family != "journal":
        return Verdict(True, where)
    if kind in ("nfs", "nfs4"):
        version = _nfs_version(mount.options)
        if version.startswith("2"):
            return Verdict(
                False,
                f"NFS v2 at {mount.point}: no atomic exclusive create, so the journal's lock "
                "does not hold across nodes",
                "mount with vers=3 or later, or use PostgreSQL",
            )
        if "nocto" in mount.options:
            return Verdict(
                False,
                f"NFS at {mount.point} is mounted nocto: a worker may append to a stale end of "
                "the journal",
                "mount without nocto (the default), or use PostgreSQL",
            )
        return Verdict(True, f"{where} (NFS v{version or '3+'}, close-to-open): journal safe")
    if kind in SAFE_SHARED:
        return Verdict(True, f"{where}: journal safe")
    if kind in UNSAFE or kind.startswith("fuse."):
        return Verdict(
            False,
            f"{where}: exclusive create and append are emulated by the client, so the "
            "journal's lock is not safe",
            "put runs_dir on NFS v3+, Lustre, GPFS, BeeGFS or CephFS, or use PostgreSQL",
        )
    if kind in LOCAL:
        return Verdict(
            True, f"{where}: local to this node (fine for one node; other nodes cannot see it)"
        )
    return Verdict(True, f"{where}: not known to wcd-hpc (journal lock untested there)")


def filesystem_verdict(path: Path, family: str, mountinfo: Path | None = None) -> Verdict | None:
    """The verdict for the filesystem holding ``path`` (or its nearest existing parent), None
    where the mount table cannot be read (not Linux)."""
    try:
        mounts = parse_mountinfo((mountinfo or MOUNTINFO).read_text())
    except OSError:
        return None
    existing = next((p for p in [path, *path.resolve().parents] if p.exists()), None)
    mount = mount_of(existing, mounts) if existing is not None else None
    return None if mount is None else judge(mount, family)
