"""`wcd-hpc doctor` names the filesystem under the journal and warns where its lock is unsafe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wcd_hpc.launch.filesystems import filesystem_verdict, judge, mount_of, parse_mountinfo

MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:50 / /home rw,relatime - nfs4 srv:/home rw,vers=4.2,hard
41 27 0:51 / /old rw,relatime - nfs srv:/old rw,vers=2
42 27 0:52 / /fast rw,relatime - nfs srv:/fast rw,vers=3,nocto
43 27 0:53 / /scratch rw - lustre 10.0.0.1@o2ib:/scratch rw,flock
44 27 0:54 / /remote rw,nosuid - fuse.sshfs me@host:/ rw,user_id=0
45 27 0:55 / /my\\040data rw - gpfs gpfs0 rw
46 27 0:56 / /bucket rw - fuse.s3fs s3fs rw
"""


@pytest.fixture
def mounts():
    return parse_mountinfo(MOUNTINFO)


def _verdict(mounts, path: str, family: str = "journal"):
    mount = mount_of(Path(path), mounts)
    assert mount is not None
    return judge(mount, family)


def test_the_deepest_mount_holding_a_path_is_the_one_judged(mounts) -> None:
    assert mount_of(Path("/home/me/runs/journal.log"), mounts).fstype == "nfs4"
    assert mount_of(Path("/homework/x"), mounts).fstype == "ext4"
    assert mount_of(Path("/my data/runs"), mounts).fstype == "gpfs"


@pytest.mark.parametrize("path", ["/home/me/runs", "/scratch/me/runs", "/my data/runs"])
def test_nfs3_plus_lustre_and_gpfs_are_safe_for_the_journal(mounts, path) -> None:
    assert _verdict(mounts, path).ok


@pytest.mark.parametrize(
    ("path", "says", "fix"),
    [
        ("/old/runs", "NFS v2", "vers=3"),
        ("/fast/runs", "nocto", "without nocto"),
        ("/remote/runs", "fuse.sshfs", "PostgreSQL"),
        ("/bucket/runs", "fuse.s3fs", "PostgreSQL"),
    ],
)
def test_filesystems_where_the_lock_does_not_hold_are_named_with_a_fix(
    mounts, path, says, fix
) -> None:
    verdict = _verdict(mounts, path)
    assert not verdict.ok
    assert says in verdict.detail and fix in verdict.fix


def test_sqlite_on_a_network_filesystem_is_refused_but_fine_on_a_local_disk(mounts) -> None:
    assert not _verdict(mounts, "/home/me/db.sqlite", "sqlite").ok
    assert _verdict(mounts, "/tmp/db.sqlite", "sqlite").ok


def test_a_local_disk_is_fine_for_one_node_and_says_so(mounts) -> None:
    verdict = _verdict(mounts, "/tmp/runs")
    assert verdict.ok and "one node" in verdict.detail


def test_a_path_not_yet_created_is_judged_by_its_nearest_existing_parent(tmp_path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(f"1 0 0:1 / / rw - ext4 /dev/x rw\n2 1 0:2 / {tmp_path} rw - nfs s:/ vers=2\n")
    verdict = filesystem_verdict(tmp_path / "runs" / "s" / "journal.log", "journal", info)
    assert verdict is not None and not verdict.ok


def test_an_unreadable_mount_table_gives_no_verdict(tmp_path) -> None:
    assert filesystem_verdict(tmp_path, "journal", tmp_path / "absent") is None


def test_doctor_reports_the_filesystem_of_the_journal(cli, tmp_path) -> None:
    res = cli("doctor", "--json", "--runs-dir", str(tmp_path / "runs"))
    checks = {c["name"]: c for c in json.loads(res.out)["checks"]}
    fs = checks["filesystem"]
    assert fs["required"] is False and " at /" in fs["detail"]
