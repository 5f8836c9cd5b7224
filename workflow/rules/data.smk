# Acquisition (verify, download or synthesise the raw files), decoding into stores, splits and dataset statistics.
declare_stage_rules("acquire_jsrt_scr", "acquire_nih", "decode_jsrt", "decode_nih", "split_scr", "split_nih",
                    "split_jsrt", "describe_datasets")


localrules:
    split_scr,
    split_nih,
    describe_datasets,
    split_jsrt,
