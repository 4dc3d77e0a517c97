"""The inventory in the database: import (upsert by name), list, show, remove, rename, and target resolution.

Every later command resolves its devices with `resolve_targets(session, groups, limits)`. Each mutating
function writes an audit event (names and changed field names only: never a variable value or a secret).
A device's `id` is stable: re-imports update the row in place and `rename_device` keeps it.

By duty: `importing` (import_inventory), `queries` (lists, targets, detail, live names), `edits` (remove,
rename, record_probe), `common` (errors, lookups shared by the others).
"""

from inventory import TargetingError
from orchestrator.inventory_store.common import InventoryStoreError, UnknownDevice
from orchestrator.inventory_store.edits import record_probe, remove_devices, rename_device
from orchestrator.inventory_store.importing import ImportReport, import_inventory
from orchestrator.inventory_store.queries import (
    DeviceDetail,
    device_groups,
    device_summary,
    group_tree,
    list_devices,
    live_names_json,
    resolve_targets,
    show_device,
)

__all__ = [
    "DeviceDetail",
    "ImportReport",
    "InventoryStoreError",
    "TargetingError",
    "UnknownDevice",
    "device_groups",
    "device_summary",
    "group_tree",
    "import_inventory",
    "list_devices",
    "live_names_json",
    "record_probe",
    "remove_devices",
    "rename_device",
    "resolve_targets",
    "show_device",
]
