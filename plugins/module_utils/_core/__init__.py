# Copyright: Phoenix Platform contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module stands on: the base module, options, errors, connection, stage fence, locks, audit, files."""
