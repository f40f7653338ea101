"""`pinterest-audiences-report`: the run history as a terminal table, JSON or one HTML page.

`cli` reads the loader's settings and the history; `data` groups the runs by stream (pure);
`text`, `html` (charts by pygal, the page from a Jinja2 template in `templates/`) render them.
Nothing here imports the Singer SDK, and nothing is written to the ledger.
"""
