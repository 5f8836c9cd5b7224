"""What several test modules share: running the pipeline in copies of the project (`pipeline`), NIH rows in each
published form (`nih_files`), and the private Slurm cluster and sshd that the long tests start (`slurm_cluster`,
`sshd_server`)."""
