# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Database maintenance: VACUUM (ANALYZE) where dead rows pile up, REINDEX, reaping idle transactions, a report."""
