"""The images domain: generation tasks, their images, and what providers report.

Plain Python: no database, no broker, no HTTP.
"""

from imagetron_images.domain.images import (
    Image,
    ImageChange,
    ImageEventType,
    ImageFailed,
    ImageFile,
    ImagePersisted,
)
from imagetron_images.domain.providers import (
    Capability,
    ProviderRequest,
    ProviderStatus,
    ProviderUpdate,
)
from imagetron_images.domain.tasks import (
    TERMINAL_STATUSES,
    Deadlines,
    GenerationTask,
    TaskCancelled,
    TaskChange,
    TaskCompleted,
    TaskCreated,
    TaskEventType,
    TaskFailed,
    TaskProgressed,
    TaskResubmitted,
    TaskSubmitted,
    apply_provider_update,
    task_id_for,
)

__all__ = [
    "TERMINAL_STATUSES",
    "Capability",
    "Deadlines",
    "GenerationTask",
    "Image",
    "ImageChange",
    "ImageEventType",
    "ImageFailed",
    "ImageFile",
    "ImagePersisted",
    "ProviderRequest",
    "ProviderStatus",
    "ProviderUpdate",
    "TaskCancelled",
    "TaskChange",
    "TaskCompleted",
    "TaskCreated",
    "TaskEventType",
    "TaskFailed",
    "TaskProgressed",
    "TaskResubmitted",
    "TaskSubmitted",
    "apply_provider_update",
    "task_id_for",
]
