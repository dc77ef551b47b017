# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Metrics of scheduled jobs as Prometheus text files, for a node exporter's textfile collector."""
