"""Read side: one module per page or document, each returning plain data for views, the API and the CLI.

`audits` (an audit's detail, a node's remediation script), `pages` (the dashboard and node pages' rows), `diff` (two
audits compared in the database), `fix` (fix runs), `nodes` (the node list's rows and failing-check filter, the node
page). Selectors read; services (checks.services) write.
"""
