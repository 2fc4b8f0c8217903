"""The Streamlit leaderboard over the results store (`harness leaderboard`).

Plain modules hold the logic, so tests call it without Streamlit: `ranking` (the leaderboard
table), `trends`, `diff` (comparing two runs), `samples_view`, `groups` (per-group values and parity
gaps) and `sample_metrics` (per-document values from the stored statistics). The store is read only
through `harness.store` (`list_store`, `load_store`, `load_samples`). `ui` holds the Streamlit glue
and caching, `app.py` the entry point, and `views/` one script per page. `synthetic` generates stores
of any size for the benchmark and tests.
"""
