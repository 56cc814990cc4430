"""The one upload handler: an uploaded file is kept in memory up to PREFLIGHT_INVENTORY_MAX_BYTES + 1 bytes and the
rest only counted, so an oversized upload never fills the disk or the memory; its true size is the file's `size`,
which inventory.services.upload_text checks before reading."""

from io import BytesIO

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler


class BoundedUploadHandler(FileUploadHandler):
    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.kept = BytesIO()
        self.total = 0
        self.room = settings.PREFLIGHT_INVENTORY_MAX_BYTES + 1

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.total += len(raw_data)
        if self.room > 0:
            self.kept.write(raw_data[: self.room])
            self.room -= min(len(raw_data), self.room)
        return None

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.kept.seek(0)
        return InMemoryUploadedFile(
            file=self.kept,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=self.total,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
