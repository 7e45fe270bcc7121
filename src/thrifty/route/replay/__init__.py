"""Replaying routers and baselines over stored test records (no new answers): `route eval`, `route predict`,
`route ladder eval`, cross-fitted comparisons with paired bootstrap intervals, and their reports."""
