"""Fireworks evaluators: a suite's reward packaged as an evaluator (packaging), the evaluator API
through cassettes (api), remote preview compared with local scores (preview), the fake server's
evaluator routes (fake), and the command line (cli)."""
