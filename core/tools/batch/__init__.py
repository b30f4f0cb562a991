"""``stylefw batch``'s work: the job list (:mod:`~stylefw.tools.batch.jobs`), the manifest of what became of each
job (:mod:`~stylefw.tools.batch.manifest`), and running them (:mod:`~stylefw.tools.batch.runner`). The command
line and torchrun are :mod:`stylefw.cli.batch`'s."""
