"""Cluster execution (issue 7). `snakemake --workflow-profile workflow/profiles/slurm` runs the tiny
configuration on a real single-node Slurm that the test starts on 127.0.0.1 (tests/slurm_cluster.py), and
Slurm's own job records show which stages went through it, to which partition and with how many CPUs. That
test skips where Slurm cannot run (no root, packages missing); the profile checks before it need no cluster.

Job states come from `squeue` (`--slurm-status-command squeue`), not from `sacct`: sacct needs slurmdbd and
a MariaDB server, two more daemons and a database to set up, while squeue answers the same question as long
as the controller keeps finished jobs (MinJobAge, one hour here).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from helpers.pipeline import BIN, ROOT, copy_repo, run
from helpers.slurm_cluster import (
    ClusterUnavailable,
    SlurmCluster,
    run_timed,
    terminate_unwinds,
    timed,
    why_unavailable,
)

SLURM_PROFILE = "workflow/profiles/slurm"
# Stages that must run on the submitting host (localrules), ones that run a network (a GPU each with
# train.runtime.device=cuda) and ones that must be cluster jobs.
LOCAL_STAGES = {"split_scr", "split_nih", "rank_classifiers", "rank_segmenters", "rank_nodules", "write_report"}
NETWORK_STAGES = {"train_classifier", "train_segmenter", "evaluate_classifier", "evaluate_segmenter"}
# cells of the default configuration's benchmark matrices (the tiny one run here has none): a GPU job each
MATRIX_CELLS = {"benchmark_classifier-resnet18-seed0", "benchmark_segmenter-attention_unet-seed1",
                "benchmark_nodule_heatmap-unet-seed1"}
CLUSTER_STAGES = {"acquire_jsrt_scr", "acquire_nih", "decode_jsrt", "decode_nih"} | NETWORK_STAGES
# For the test cluster only: first status check 2 s after a submission (and after each finished job),
# answered by squeue; keep the Slurm log of every job to read it afterwards.
TEST_CLUSTER_ARGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
                     "--seconds-between-status-checks", "2", "--slurm-keep-successful-logs"]
PIPELINE_LIMIT_S = 900
JOB_HEADER = re.compile(r"^(local)?rule ([\w-]+):$")  # matrix cells: benchmark_<task>-<model>-seed<k>


@dataclass
class AnnouncedJob:
    """A job as snakemake announces it: `rule x:` goes to the executor, `localrule x:` runs in place."""
    rule: str
    local: bool
    threads: int = 1
    resources: dict[str, str] = field(default_factory=dict)


def announced_jobs(output: str) -> dict[str, AnnouncedJob]:
    """Jobs by rule, from snakemake's output: a header line, then indented `threads:`/`resources:` lines."""
    jobs: dict[str, AnnouncedJob] = {}
    current = None
    for line in output.splitlines():
        header = JOB_HEADER.match(line)
        if header:
            current = jobs[header[2]] = AnnouncedJob(header[2], local=bool(header[1]))
        elif current is not None and line.startswith("    "):
            key, _, value = line.strip().partition(": ")
            if key == "threads":
                current.threads = int(value)
            elif key == "resources":
                current.resources = dict(item.split("=", 1) for item in value.split(", "))
        else:
            current = None
    jobs.pop("all", None)
    return jobs


def profile_partition() -> str:
    profile = yaml.safe_load((ROOT / SLURM_PROFILE / "config.yaml").read_text())
    return str(profile["default-resources"]["slurm_partition"])


@pytest.fixture(scope="module")
def gpu_repo(tmp_path_factory) -> Path:
    """A copy whose params.yaml trains on CUDA (never run: only planned)."""
    repo = copy_repo(tmp_path_factory.mktemp("gpu_profile"))
    run([str(BIN / "cxrbench"), "compose", "train=gpu_full"], repo)
    return repo


@pytest.mark.parametrize("profile", ["slurm", "local-gpu"])
def test_profile_gives_each_network_stage_one_gpu(gpu_repo, profile):
    cmd = [str(BIN / "snakemake"), "--dry-run", "--workflow-profile", f"workflow/profiles/{profile}"]
    dry = run(timed(cmd, 120), gpu_repo)
    jobs = announced_jobs(dry.stdout + dry.stderr)
    assert LOCAL_STAGES | CLUSTER_STAGES | MATRIX_CELLS <= jobs.keys(), dry.stdout
    gpu_jobs = {rule for rule, job in jobs.items() if "gpu" in job.resources}
    cpu_only = (CLUSTER_STAGES - NETWORK_STAGES) | LOCAL_STAGES
    assert NETWORK_STAGES | MATRIX_CELLS <= gpu_jobs and not gpu_jobs & cpu_only, gpu_jobs
    for rule in gpu_jobs:
        assert jobs[rule].resources["gpu"] == "1", (rule, jobs[rule].resources)
        assert int(jobs[rule].resources["cpus_per_gpu"]) >= 1, (rule, jobs[rule].resources)
    if profile == "slurm":
        assert {job.resources.get("slurm_partition") for job in jobs.values()} == {profile_partition()}


@dataclass
class SlurmRun:
    repo: Path
    announced: dict[str, AnnouncedJob]
    records: list[dict[str, str]]  # squeue's record of each job of the run, finished ones included

    def records_by_rule(self) -> dict[str, dict[str, str]]:
        """The plugin comments each job `rule_<rule>`."""
        return {record["comment"].removeprefix("rule_"): record for record in self.records}


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> SlurmRun:
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    repo = copy_repo(tmp_path_factory.mktemp("slurm"))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(repo / "src"),
           "DVC_NO_ANALYTICS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cluster = SlurmCluster(partition=profile_partition())
    with terminate_unwinds():
        try:
            cluster.start()
        except ClusterUnavailable as error:
            pytest.skip(str(error))
        try:
            cmd = [str(BIN / "snakemake"), "--workflow-profile", SLURM_PROFILE, *TEST_CLUSTER_ARGS]
            result = run_timed(cmd, PIPELINE_LIMIT_S, cwd=repo, env=cluster.env(env))
            output = result.stdout + result.stderr
            assert result.returncode == 0, (f"snakemake exited {result.returncode}:\n{output[-8000:]}\n"
                                            f"{cluster.log_tails()}")
            run_id = re.search(r"SLURM run ID: (\S+)", output)
            assert run_id, output[-4000:]
            records = cluster.jobs(run_id[1])
        finally:
            cluster.stop()
    return SlurmRun(repo, announced_jobs(output), records)


@pytest.mark.slurm
@pytest.mark.e2e
class TestOnSlurm:
    def test_run_writes_every_output_and_leaves_nothing_to_do(self, slurm_run):
        for path in ("results/report.html", "results/report.md", "metrics/classifier.json",
                     "metrics/segmenter.json", "data/store/nih/index.csv", "data/store/jsrt/index.csv",
                     "data/splits/nih.csv", "dvc.lock"):
            assert (slurm_run.repo / path).is_file(), path
        dry = run(timed([str(BIN / "snakemake"), "--dry-run", "--cores", "1"], 120), slurm_run.repo)
        assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr

    def test_cluster_stages_ran_as_slurm_jobs_on_the_profiles_partition(self, slurm_run):
        submitted = {rule for rule, job in slurm_run.announced.items() if not job.local}
        assert CLUSTER_STAGES <= submitted, slurm_run.announced
        by_rule = slurm_run.records_by_rule()
        assert len(by_rule) == len(slurm_run.records) and by_rule.keys() == submitted, slurm_run.records
        for rule, record in by_rule.items():
            assert record["state"] == "COMPLETED" and record["partition"] == profile_partition(), record
            # Written by slurmstepd from the job's own output: the stage ran inside that Slurm job.
            job_log = slurm_run.repo / ".snakemake" / "slurm_logs" / f"rule_{rule}" / f"{record['id']}.log"
            assert re.search(rf"Finished jobid: \d+ \(Rule: {rule}\)", job_log.read_text()), job_log

    def test_small_stages_run_on_the_submitting_host(self, slurm_run):
        local = {rule for rule, job in slurm_run.announced.items() if job.local}
        assert LOCAL_STAGES <= local, slurm_run.announced
        assert not LOCAL_STAGES & slurm_run.records_by_rule().keys()

    def test_slurm_allocates_each_job_the_threads_of_its_stage(self, slurm_run):
        for rule, record in slurm_run.records_by_rule().items():
            assert int(record["cpus"]) == slurm_run.announced[rule].threads, (record, slurm_run.announced[rule])
        workers = yaml.safe_load((slurm_run.repo / "params.yaml").read_text())["decode"]["nih"]["workers"]
        assert slurm_run.announced["decode_nih"].threads == workers > 1
