# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL itself: catalog discovery, the SQL toolkit, client binaries, the embedded cluster."""
