"""The fleet as the operator describes it: typed host and group records, loaders for our YAML, CSV and
Ansible (INI and YAML) inventories, and `--group`/`--limit` targeting. Pure: no database, no network.

Everything a loader cannot accept raises `InventoryError`, whose `problems` name file, line and field.
The formats are described in inventory/FORMAT.md.
"""

from inventory.csv_format import dump_csv, load_csv
from inventory.errors import InventoryError, Problem, TargetingError
from inventory.formats import FORMATS, Format, detect_format, load_file, loads
from inventory.models import AuthRef, GroupEntry, HostEntry, Inventory, JSONValue
from inventory.native_yaml import dump_yaml, load_yaml
from inventory.targeting import Selection, TargetRecord, select, select_hosts, split_patterns

__all__ = [
    "FORMATS",
    "AuthRef",
    "Format",
    "GroupEntry",
    "HostEntry",
    "Inventory",
    "InventoryError",
    "JSONValue",
    "Problem",
    "Selection",
    "TargetRecord",
    "TargetingError",
    "detect_format",
    "dump_csv",
    "dump_yaml",
    "load_csv",
    "load_file",
    "load_yaml",
    "loads",
    "select",
    "select_hosts",
    "split_patterns",
]
