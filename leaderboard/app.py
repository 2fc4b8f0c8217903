"""The Streamlit entry point: `streamlit run leaderboard/app.py -- --store DIR` (or `harness leaderboard`).

It only sets up the page, the sidebar (the store fixed at launch, a refresh button) and the
navigation; each page is a script in `leaderboard/views` listed in `leaderboard.views.PAGES`.
"""

from __future__ import annotations

import streamlit as st

from harness.leaderboard.ui import store_sidebar
from harness.leaderboard.views import PAGES


def main() -> None:
    st.set_page_config(page_title="harness leaderboard", page_icon=":material/leaderboard:", layout="wide")
    sections: dict[str, list[st.Page]] = {}
    for index, spec in enumerate(PAGES):
        page = st.Page(
            spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=index == 0
        )
        sections.setdefault(spec.section, []).append(page)
    navigation = st.navigation(sections)
    store_sidebar()
    navigation.run()


if __name__ == "__main__":
    main()
