"""The paper's claims as tested verdicts: the chapter context, the runs each claim needs, the verdict
functions, the scorecard and the horizon analysis. Reads `runs` and `pruning`; renders nothing."""
