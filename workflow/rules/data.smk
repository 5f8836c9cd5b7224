# Acquisition (verify, download or synthesise the raw files), decoding into stores, and splits.
declare_stage_rules("acquire_jsrt_scr", "acquire_nih", "decode_jsrt", "decode_nih", "split_scr", "split_nih", "split_jsrt")


localrules:
    split_scr,
    split_nih,
    split_jsrt,
