"""The app's pages: one script each, listed in `PAGES`.

A page is a Streamlit script in this folder that calls its `main()` when run; the logic it shows
lives in plain modules of `leaderboard` that tests call directly. To add a page (the human
evaluation pages, for instance), add its script here and one `PageSpec` line below; `section`
groups pages in the navigation menu.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PAGES", "RATING_PAGES", "VIEWS_DIR", "PageSpec"]

VIEWS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PageSpec:
    script: str  # file name in this folder
    title: str
    icon: str  # a Streamlit icon, e.g. ":material/leaderboard:"
    section: str
    url_path: str

    @property
    def path(self) -> Path:
        return VIEWS_DIR / self.script


PAGES: tuple[PageSpec, ...] = (
    PageSpec("leaderboard.py", "Leaderboard", ":material/leaderboard:", "Results", "leaderboard"),
    PageSpec("trends.py", "Trends", ":material/show_chart:", "Results", "trends"),
    PageSpec("compare.py", "Compare", ":material/compare_arrows:", "Results", "compare"),
    PageSpec("samples.py", "Samples", ":material/article:", "Results", "samples"),
    PageSpec("fairness.py", "Fairness", ":material/balance:", "Results", "fairness"),
    PageSpec("run_details.py", "Run details", ":material/info:", "Results", "run-details"),
    PageSpec("rate_rubric.py", "Rate outputs", ":material/rate_review:", "Human evaluation", "rate-rubric"),
    PageSpec("rate_pairwise.py", "Compare answers", ":material/compare:", "Human evaluation", "pairwise"),
    PageSpec("human_results.py", "Human results", ":material/groups:", "Human evaluation", "human-results"),
)

# The rating page of each campaign mode (its url_path): where an invitation link points.
RATING_PAGES: dict[str, str] = {"rubric": "rate-rubric", "pairwise": "pairwise"}
