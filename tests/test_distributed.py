"""Beyond one machine: Ray Data actors and ``torchrun`` ranks write exactly what one process writes.

The acceptance case: a folder of 50 images, predicted by one process, by ``--ray --num-actors 2``
(a local Ray instance with CPU actors, on 127.0.0.1 only) and by ``torchrun --nproc_per_node 2``,
gives the same 50 result sets, byte for byte. The single-process reference runs with the default
torch thread count (every core), the actors and ranks with one thread each (one core each here): the
CPU forward gives the same bits at any thread count (:mod:`metricdepth.ops`), and this checks it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from metricdepth.batch import InputItem, collect_inputs, read_listing
from metricdepth.cli import app
from metricdepth.distributed.sharding import LaunchEnv, launch_env, protect_inputs, shard
from torch_threads import torch_threads

HAS_RAY = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray Data and pyarrow (metricdepth[ray]) not installed")
# Ray Data's DataContext warns about its own deprecated fields whenever it is created.
ray_quiet = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")
COUNT = 50
PER_SET = 5  # npz, depth PNG, colour PNG, PLY, JSON


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def outputs(folder: Path) -> dict[str, bytes]:
    """Every prediction file below ``folder`` (the results manifest aside), by relative path."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.parquet"
    }


@pytest.fixture(scope="module")
def photos(tmp_path_factory, data_dir) -> Path:
    """50 small PNG photos (64×48 crops of the test photos), 25 of them in a sub-folder."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    sources = [Image.open(data_dir / name).convert("RGB") for name in ("motorcycle_left.png", "leuvenA.jpg")]
    for i in range(COUNT):
        source = sources[i % 2]
        x, y = (i * 37) % (source.width - 64), (i * 23) % (source.height - 48)
        folder = root / "sub" if i >= COUNT // 2 else root
        source.crop((x, y, x + 64, y + 48)).save(folder / f"photo_{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def single(photos, camera_checkpoint, tmp_path_factory) -> Path:
    """The folder predicted by one process (the reference)."""
    out = tmp_path_factory.mktemp("single") / "out"
    with torch_threads(max(2, torch.get_num_threads())):  # several threads; actors and ranks use one
        result = invoke("predict", photos, "-c", camera_checkpoint, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"{COUNT} of {COUNT} inputs written" in result.output
    return out


def assert_same_sets(reference: Path, other: Path) -> None:
    a, b = outputs(reference), outputs(other)
    assert len(a) == COUNT * PER_SET
    assert sorted(a) == sorted(b)
    assert sum(name.startswith("sub/") for name in a) == COUNT // 2 * PER_SET  # sub-folders mirrored
    different = sorted(name for name in a if a[name] != b[name])
    assert different == [], different


# --------------------------------------------------------------------------- listeners (ss -ltnp)
def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _ray_processes() -> list[str]:
    """Ray's server processes among this process's descendants."""
    names = []
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            if name in ("gcs_server", "raylet") or name.startswith("ray::"):
                names.append(name)
    return names


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1") or host.startswith("::ffff:127.")


class ListenerWatch:
    """Polls ``ss -ltnp`` while a run is going on; records the listening sockets of this process and
    its descendants (a local Ray instance's GCS, raylet, agents and workers)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()  # (local address, process)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        ours = {os.getpid()}
        while not self._stop.is_set():
            ours |= _descendants(os.getpid())
            lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
            for line in lines:
                fields = line.split()
                pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
                if len(fields) >= 4 and pids & ours:
                    name = re.search(r'\(\("([^"]+)"', line)
                    self.seen.add((fields[3], name.group(1) if name else "?"))
            self._stop.wait(0.25)

    def __enter__(self) -> ListenerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------- units
@pytest.mark.parametrize("count, world", [(50, 2), (7, 3), (2, 4), (0, 2), (5, 1)])
def test_shards_are_disjoint_and_cover_every_item(count, world):
    items = [f"item{i}" for i in range(count)]
    shares = [shard(items, rank, world) for rank in range(world)]
    flat = [item for share in shares for item in share]
    assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert shares == [shard(items, rank, world) for rank in range(world)]  # deterministic
    with pytest.raises(ValueError, match="rank"):
        shard(items, world, world)


def test_launch_env_reads_what_torchrun_sets():
    assert launch_env({}) == LaunchEnv(0, 1, 0)
    env = launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert env == LaunchEnv(3, 4, 1) and env.distributed
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        launch_env({"WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match="RANK=2, WORLD_SIZE=2"):
        launch_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_a_file_list_and_a_manifest_name_the_folders_items(photos, tmp_path):
    """The same files with the same output names, from a folder, a file list in it, or a list or
    Parquet manifest beside it (outputs then mirror the entries' paths, folder name included)."""
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    root = tmp_path / "photos"
    shutil.copytree(photos, root)
    out = tmp_path / "out"
    from_folder, missing = collect_inputs([root], out)
    assert missing == [] and len(from_folder) == COUNT
    key = {(item.path.resolve(), item.out_stem.relative_to(out)) for item in from_folder}
    names = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*.png"))]
    inside = root / "list.txt"  # entries relative to the list's folder: exactly the folder's outputs
    inside.write_text("\n".join(names) + "\n", encoding="utf-8")
    beside = tmp_path / "list.txt"
    beside.write_text(
        "# the photos\n\n" + "".join(f"photos/{n}\n" for n in reversed(names)), encoding="utf-8"
    )
    manifest = tmp_path / "photos.parquet"
    pq.write_table(pa.table({"path": [f"photos/{n}" for n in names]}), manifest)
    for source, prefix in ((inside, Path()), (beside, Path("photos")), (manifest, Path("photos"))):
        items, missing = collect_inputs([source], out)
        assert missing == [], missing
        assert len(items) == COUNT
        got = {(item.path.resolve(), item.out_stem.relative_to(out)) for item in items}
        assert got == {(path, prefix / stem) for path, stem in key}
    # an output column names the outputs (sub-folders allowed)
    pq.write_table(pa.table({"path": [f"photos/{names[0]}"], "output": ["renamed/first"]}), manifest)
    (item,), _ = collect_inputs([manifest], out)
    assert item.out_stem == out / "renamed" / "first" and item.path == root / names[0]


def test_listing_problems_name_the_list_and_the_entry(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "folder").mkdir()
    listing = tmp_path / "list.txt"
    listing.write_text("a.png\n  # comment\nmissing.png\nfolder\n", encoding="utf-8")
    found, problems = read_listing(listing)
    assert found == [(tmp_path / "a.png", Path("a"))]
    assert [message for _, message in problems] == [
        f"{listing} line 3: missing.png: file not found",
        f"{listing} line 4: folder: is a folder; a list names image files",
    ]
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"file": ["a.png"]}), bad)
    assert read_listing(bad) == (
        [],
        [(str(bad), f"{bad}: a manifest needs a 'path' column of image paths (its columns: file)")],
    )
    pq.write_table(pa.table({"path": [1, 2]}), bad)
    assert "column 'path' holds int64, not text" in read_listing(bad)[1][0][1]
    pq.write_table(pa.table({"path": ["a.png", None, "a.png"], "output": ["../up", "x", None]}), bad)
    found, problems = read_listing(bad)
    assert found == [(tmp_path / "a.png", Path("a"))]
    assert (
        problems[0][1]
        == f"{bad} row 1 of 3: output name '../up' does not name a file below the output folder"
    )
    assert problems[1][1] == f"{bad} row 2 of 3: no path"
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert "cannot read the Parquet manifest" in read_listing(tmp_path / "junk.parquet")[1][0][1]
    items, missing = collect_inputs([tmp_path / "empty.txt", listing], tmp_path / "out")
    assert [item.path for item in items] == [tmp_path / "a.png"] and len(missing) == 3  # empty.txt: not found


def test_an_output_replacing_another_shards_input_is_refused(tmp_path):
    """With --overwrite, one process refuses an output that is another item's input; so does a shard."""
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "x_depth.png")  # a photo named like x's depth PNG
    items, _ = collect_inputs([tmp_path / "x.png", tmp_path / "x_depth.png"], tmp_path)
    first, second = shard(items, 0, 2), shard(items, 1, 2)
    kept, refused = protect_inputs(first, items, ["npz", "depth16"])
    assert kept == [] and refused == [
        (
            str(tmp_path / "x.png"),
            f"{tmp_path / 'x.png'}: output {tmp_path / 'x_depth.png'} would overwrite an input; "
            "choose another --output",
        )
    ]
    assert protect_inputs(second, items, ["npz", "depth16"]) == (second, [])
    assert protect_inputs(first, items, ["npz"]) == (first, [])
    assert all(isinstance(item, InputItem) for item in items)


def test_importing_the_package_loads_neither_torch_nor_ray():
    code = (
        "import sys, metricdepth, metricdepth.distributed as d; d.shard, d.launch_env; "
        "print('torch' in sys.modules, 'ray' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_ray_options_are_checked_before_any_work(tmp_path, photos, camera_checkpoint):
    base = ["predict", photos, "-c", camera_checkpoint, "-o", tmp_path / "out"]
    cases = [
        (["--num-actors", "2"], "--num-actors only applies with --ray"),
        (
            ["--ray-address", "auto", "--num-actors", "2"],
            "--ray-address and --num-actors only apply with --ray",
        ),
        (["--ray", "--relative", "x"], "--ray runs Depth Pro checkpoints"),
        (["--ray", "--device", "cuda:1"], "--device cuda:1 with --ray"),
        (["--ray", "-d", f"folder={photos}"], "not --dataset"),
    ]
    for extra, message in cases:
        result = invoke(*base, *extra)
        assert result.exit_code == 2, result.output
        assert message in result.output
    if HAS_RAY:  # a results manifest never replaces a file metricdepth did not write (checked before Ray)
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "manifest.parquet").write_bytes(b"mine")
        result = invoke(*base, "--ray")
        assert result.exit_code == 2 and "was not written by metricdepth predict --ray" in result.output
        assert (tmp_path / "out" / "manifest.parquet").read_bytes() == b"mine"
    assert not (tmp_path / "out").exists() or [p.name for p in (tmp_path / "out").iterdir()] == [
        "manifest.parquet"
    ]


# --------------------------------------------------------------------------- Ray
@needs_ray
@ray_quiet
def test_ray_actors_write_the_single_process_files(photos, single, camera_checkpoint, tmp_path):
    """Acceptance: 50 images, 2 CPU actors on a local Ray instance (127.0.0.1 only) → the same 50 sets."""
    import pyarrow.parquet as pq

    out = tmp_path / "ray"
    watch_listeners = shutil.which("ss") is not None
    started = time.perf_counter()
    try:
        with ListenerWatch() if watch_listeners else contextlib.nullcontext() as watch:
            result = invoke("predict", photos, "-c", camera_checkpoint, "-o", out, "--ray", "--num-actors", 2)
    finally:
        import ray

        if ray.is_initialized():  # the CLI shuts its instance down; this only cleans up after a failure
            ray.shutdown()
            pytest.fail("the CLI left its Ray instance running")
    print(f"ray run: {time.perf_counter() - started:.1f} s")
    assert result.exit_code == 0, result.output
    assert "Ray: 2 CPU actors on a local Ray instance (127.0.0.1)" in result.output
    assert f"{COUNT} of {COUNT} inputs written" in result.output
    assert_same_sets(single, out)

    table = pq.read_table(out / "manifest.parquet")
    assert table.schema.names == ["input", "path", "output", "status", "message", "files"]
    rows = table.to_pylist()
    assert len(rows) == COUNT and {row["status"] for row in rows} == {"written"}
    assert [row["output"] for row in rows] == sorted(row["output"] for row in rows)  # item order
    assert all(row["message"] is None and len(row["files"]) == PER_SET for row in rows)
    assert sorted(f for row in rows for f in row["files"]) == sorted(outputs(out))
    assert rows[0]["input"] == str(photos / "photo_00.png") and rows[0]["output"] == "photo_00"

    deadline = time.monotonic() + 15  # the instance's processes are gone
    while time.monotonic() < deadline and _ray_processes():
        time.sleep(0.5)
    assert _ray_processes() == [], _ray_processes()
    if watch_listeners:
        processes = {name for _, name in watch.seen}
        assert {"gcs_server", "raylet"} <= processes, watch.seen  # the check saw the instance
        exposed = sorted(entry for entry in watch.seen if not _is_loopback(entry[0]))
        assert exposed == [], exposed
    else:
        warnings.warn("ss not found: the Ray instance's listening addresses were not checked", stacklevel=1)


@needs_ray
@ray_quiet
def test_ray_reports_bad_inputs_in_the_manifest_and_resumes(photos, camera_checkpoint, tmp_path, monkeypatch):
    """A Parquet manifest as input; a broken image and a missing entry fail, named, the rest is written;
    --skip-existing then skips what is done."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    work = tmp_path / "work"
    work.mkdir()
    for name in ("photo_00.png", "photo_01.png", "photo_02.png"):
        shutil.copy(photos / name, work / name)
    (work / "broken.png").write_bytes(b"not an image")
    (work / "clip.mp4").write_bytes(b"a video: not for --ray")
    listed = ["photo_00.png", "broken.png", "photo_01.png", "photo_02.png", "gone.png", "clip.mp4"]
    pq.write_table(pa.table({"path": listed}), work / "inputs.parquet")
    out = tmp_path / "out"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # a cluster's setting: --ray alone still runs locally
    result = invoke("predict", work / "inputs.parquet", "-c", camera_checkpoint, "-o", out, "--ray")
    monkeypatch.delenv("RAY_ADDRESS")
    assert result.exit_code == 1, result.output
    assert "3 of 6 inputs written" in result.output
    assert f"{work / 'broken.png'}: not a recognised image format" in result.output
    assert "clip.mp4: --ray predicts images; run videos without --ray" in result.output
    rows = pq.read_table(out / "manifest.parquet").to_pylist()
    status = {Path(row["input"]).name: row["status"] for row in rows}
    assert status == {
        "photo_00.png": "written",
        "broken.png": "failed",
        "photo_01.png": "written",
        "photo_02.png": "written",
        "gone.png": "failed",
        "clip.mp4": "failed",
    }
    broken = next(row for row in rows if row["input"].endswith("broken.png"))
    assert broken["message"].startswith(str(work / "broken.png")) and broken["files"] == []
    assert next(row for row in rows if row["input"].endswith("gone.png"))["path"] is None
    assert sorted(outputs(out)) == sorted(
        f"photo_0{i}{s}"
        for i in range(3)
        for s in (".npz", "_depth.png", "_inverse_depth.png", ".ply", ".json")
    )
    first = outputs(out)

    # the results manifest lists what to do again: rows with an input file
    again = invoke(
        "predict", out / "manifest.parquet", "-c", camera_checkpoint, "-o", tmp_path / "again", "--ray"
    )
    assert again.exit_code == 1, again.output  # broken.png again
    assert outputs(tmp_path / "again") == first  # same names (its output column), same inputs

    resumed = invoke(
        "predict", work / "inputs.parquet", "-c", camera_checkpoint, "-o", out, "--ray", "--skip-existing"
    )
    assert resumed.exit_code == 1, resumed.output
    assert "0 of 6 inputs written" in resumed.output and "3 skipped" in resumed.output
    statuses = [row["status"] for row in pq.read_table(out / "manifest.parquet").to_pylist()]
    assert statuses == ["skipped", "failed", "skipped", "skipped", "failed", "failed"]
    assert outputs(out) == first


# --------------------------------------------------------------------------- torchrun
def _own_network() -> list[str]:
    """A command prefix running it in a network namespace of its own (only a loopback there) where the
    system allows it: torchrun's store (a TCPStore) listens on every interface and has no option to
    bind to one. Empty where that is not possible (the run then uses the loopback for gloo only)."""
    if not (shutil.which("unshare") and shutil.which("ip")):
        return []
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True)
    if probe.returncode != 0:
        return []
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def torchrun_predict(inputs: Path, checkpoint: Path, out: Path) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m metricdepth predict INPUTS -c CHECKPOINT -o OUT`` on the CPU,
    one thread per rank, in a network of its own where possible."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    predict = ["-m", "metricdepth", "predict", str(inputs), "-c", str(checkpoint), "-o", str(out)]
    return subprocess.run(
        [*_own_network(), *launcher, *predict],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"},
        timeout=600,
    )


def test_torchrun_ranks_write_the_single_process_files(photos, single, camera_checkpoint, tmp_path):
    """Acceptance: ``torchrun --nproc_per_node 2 -m metricdepth predict`` → the same 50 sets."""
    out = tmp_path / "torchrun"
    started = time.perf_counter()
    run = torchrun_predict(photos, camera_checkpoint, out)
    print(f"torchrun run: {time.perf_counter() - started:.1f} s")
    assert run.returncode == 0, run.stderr[-3000:]
    # rank 0 prints the merged summary of both ranks, once
    assert run.stderr.count(f"{COUNT} of {COUNT} inputs written to {out}") == 1, run.stderr[-3000:]
    assert_same_sets(single, out)


def test_torchrun_merges_the_failures_of_every_rank(photos, camera_checkpoint, tmp_path):
    """A file list under torchrun; the broken image is rank 1's, the missing entry everyone's: rank 0
    lists both once and exits 1."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("photo_00.png", "photo_01.png", "photo_02.png"):
        shutil.copy(photos / name, work / name)
    (work / "broken.png").write_bytes(b"not an image")
    (work / "list.txt").write_text("photo_00.png\nbroken.png\nphoto_01.png\nphoto_02.png\ngone.png\n")
    out = tmp_path / "out"
    run = torchrun_predict(work / "list.txt", camera_checkpoint, out)
    assert run.returncode != 0
    assert run.stderr.count("3 of 5 inputs written") == 1, run.stderr[-3000:]
    assert run.stderr.count(f"  {work / 'broken.png'}: not a recognised image format") == 1
    assert run.stderr.count(f"  {work / 'list.txt'} line 5: gone.png: file not found") == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"photo_0{i}{s}"
        for i in range(3)
        for s in (".npz", "_depth.png", "_inverse_depth.png", ".ply", ".json")
    )
