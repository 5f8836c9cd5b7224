# Benchmark evaluation and the report next to the published results.
declare_stage_rules("evaluate_classifier", "evaluate_segmenter", "write_report")


localrules:
    write_report,
