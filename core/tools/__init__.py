"""The tools built on the engine: ``score`` (how stylised an output is), ``estimate`` (memory and time before a
run), ``goldens`` (recipes as regression tests, with their pytest plugin), ``batch`` (grids of jobs),
``preview`` (a run in the browser), ``plot`` (loss curves) and ``sheet`` (contact sheets)."""
