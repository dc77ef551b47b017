# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where state lives, and where it must not."""

from __future__ import annotations

from ansible_collections.phoenix.platform.plugins.module_utils._core.files import (
    default_state_home,
    installed_collection_holding,
    state_path_problem,
)


def test_state_home_prefers_phoenix_home_then_xdg_then_the_home_directory():
    assert default_state_home({"PHOENIX_HOME": "/srv/phoenix", "XDG_DATA_HOME": "/x", "HOME": "/h"}) == "/srv/phoenix"
    assert default_state_home({"XDG_DATA_HOME": "/x", "HOME": "/h"}) == "/x/phoenix"
    assert default_state_home({"HOME": "/h"}) == "/h/.local/share/phoenix"


def test_paths_inside_an_installed_collection_are_found_directly_or_through_a_link(tmp_path):
    installed = tmp_path / "ansible_collections" / "acme" / "ops"
    installed.mkdir(parents=True)
    checkout = tmp_path / "checkout" / "ansible_collections" / "acme" / "dev"  # no MANIFEST.json: not installed
    checkout.mkdir(parents=True)
    (installed / "MANIFEST.json").write_text("{}")
    (tmp_path / "link").symlink_to(installed)
    assert installed_collection_holding(str(installed / "backups" / "BETA")) == installed
    assert installed_collection_holding(str(tmp_path / "link" / "state")) == installed.resolve()
    assert installed_collection_holding(str(checkout / "state")) is None
    assert installed_collection_holding(str(tmp_path / "elsewhere")) is None
    problem = state_path_problem({"dest": str(installed / "b"), "src": str(installed)}, ("dest",))
    assert problem.startswith("dest=") and "PHOENIX_HOME" in problem
    assert state_path_problem({"dest": None}, ("dest",)) is None
