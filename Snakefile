# cxrbench: `snakemake --cores N` runs the stage DAG declared in dvc.yaml (one rule per DVC stage).
# Each rule records its stage in dvc.lock when it succeeds, so `dvc status` is clean afterwards.
include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/benchmark.smk"


rule all:
    input:
        stage_output_paths("write_report"),
