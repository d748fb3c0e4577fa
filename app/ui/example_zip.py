"""Many examples at once: a .zip of class folders, `<class>/<file>` (or `<folder>/<class>/<file>`, as zipping a
folder makes), added to the classes of the same name (letter case ignored) or to new ones.

Every member's path is checked before anything is added (app.datasets.archives): one that is absolute or climbs
out with ".." refuses the whole zip, and links are never followed. Hidden files and folders (`.DS_Store`,
`__MACOSX/`) are ignored; files of the other kind, files outside a class folder and files that cannot be read
are skipped and listed; each example is checked as any other (app.ui.example_store), within its limits.

Example:
    >>> import io, tempfile, zipfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from app.ui.example_store import ExampleStore
    >>> archive = io.BytesIO()
    >>> with zipfile.ZipFile(archive, "w") as zip_file:
    ...     for name, angle in (("down", 270), ("up", 90)):
    ...         picture = io.BytesIO()
    ...         Image.linear_gradient("L").rotate(angle).save(picture, format="PNG")
    ...         zip_file.writestr(f"arrows/{name}/1.png", picture.getvalue())
    ...     zip_file.writestr("arrows/readme.txt", "two classes")
    >>> scratch = Path(tempfile.mkdtemp())
    >>> report = import_zip(ExampleStore(scratch / "examples", "image"), archive.getvalue(), "arrows.zip", scratch)
    >>> report.added, report.new_classes, report.skipped
    ({'down': 1, 'up': 1}, ['down', 'up'], [('arrows/readme.txt', 'not in a class folder')])
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from app.class_folders import file_kind
from app.datasets.archives import iter_archive
from app.errors import DatasetError, InputError
from app.ui.example_store import KINDS, MAX_CLASSES, ExampleStore, LimitError, check_class_name

MAX_MEMBER_BYTES = 20 * 2**20  # one file of the zip, as one upload
MAX_MEMBERS = 20_000  # files listed in one zip
SKIPPED_SHOWN = 5  # skipped files named in the message


@dataclass
class ZipReport:
    """What a zip added: {class name: examples}, the classes it made, and (member, reason) of what it skipped."""

    archive: str
    added: dict[str, int] = field(default_factory=dict)
    new_classes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    stopped: str = ""  # the limit that ended the import early, if one did

    def message(self) -> str:
        """One paragraph for the visitor."""
        total = sum(self.added.values())
        text = f"Added {total} example{'s' * (total != 1)} from {self.archive}"
        if self.added:
            text += ": " + ", ".join(f"{name} {count}" for name, count in self.added.items())
        if self.new_classes:
            text += f" (new classes: {', '.join(self.new_classes)})"
        text += "."
        if self.stopped:
            text += f" Stopped early: {self.stopped}."
        if self.skipped:
            shown = "; ".join(f"{member}: {reason}" for member, reason in self.skipped[:SKIPPED_SHOWN])
            more = f"; and {len(self.skipped) - SKIPPED_SHOWN} more" if len(self.skipped) > SKIPPED_SHOWN else ""
            text += f" Skipped {len(self.skipped)}: {shown}{more}."
        return text


def import_zip(store: ExampleStore, data: bytes, archive_name: str, scratch: Path) -> ZipReport:
    """Add the examples of a zip of class folders to `store`.

    Args:
        store: the examples of the kind chosen (sounds or pictures).
        data: the zip's bytes.
        archive_name: its name, for messages.
        scratch: a folder for the zip while it is read (it is deleted afterwards).

    Raises:
        InputError: not a readable zip, a member path that leaves the zip's folder (nothing is added), no class
            folder with files of the store's kind, or more classes than MAX_CLASSES in all.
    """
    report = ZipReport(archive_name)
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=scratch, suffix=".zip") as archive:
        archive.write(data)
        archive.flush()
        path = Path(archive.name)
        plan = _plan(store, path, archive_name, report)
        targets = _classes_for(store, plan, report)
        for member, file in _members(path, archive_name):
            class_name = plan.get(member)
            if class_name is None:
                continue
            if not _add_member(store, targets[class_name], member, file, report):
                break
    return report


def _members(path: Path, archive_name: str) -> Iterator[tuple[PurePosixPath, IO[bytes]]]:
    """The zip's files, paths checked; InputError (naming the upload, not our temporary file) otherwise."""
    try:
        for count, (member, file) in enumerate(iter_archive(path)):
            if count >= MAX_MEMBERS:
                raise InputError(f"{archive_name} holds more than {MAX_MEMBERS:,} files; split it into smaller ones")
            yield member, file
    except DatasetError as error:
        raise InputError(str(error).replace(path.name, archive_name)) from None


def _plan(store: ExampleStore, path: Path, archive_name: str, report: ZipReport) -> dict[PurePosixPath, str]:
    """{member: class folder name} of the members to add; the others go to `report.skipped`. Reads every member
    path first, so a bad one refuses the zip before anything is added."""
    members = [member for member, _ in _members(path, archive_name) if not _hidden(member)]
    strip = _one_folder_of_classes(members, store.kind)
    other_kind = next(kind for kind in KINDS if kind != store.kind)
    plan, others = {}, 0
    for member in members:
        parts = member.parts[1:] if strip else member.parts
        kind = file_kind(Path(member.name))
        if len(parts) < 2:
            report.skipped.append((str(member), "not in a class folder"))
        elif kind != store.kind:
            others += kind == other_kind
            one, other = KINDS[store.kind][:-1], KINDS[other_kind][:-1]
            report.skipped.append(
                (str(member), f"a {other}, not a {one}" if kind else f"not a {one} file, by its name")
            )
        else:
            plan[member] = parts[0]
    if not plan:
        if others:
            raise InputError(
                f"{archive_name} holds {KINDS[other_kind]} ({others} files), not {KINDS[store.kind]}; choose "
                f"{KINDS[other_kind].capitalize()} above first"
            )
        raise InputError(
            f"{archive_name} has no class folders of {KINDS[store.kind]}; expected <class>/<file> folders, such as "
            f"{'clap/1.wav' if store.kind == 'audio' else 'cat/1.jpg'}"
        )
    return plan


def _classes_for(store: ExampleStore, plan: dict[PurePosixPath, str], report: ZipReport) -> dict[str, str]:
    """{class folder name: class id}: the store's class of that name, or a new one (names checked first, and the
    class count, so that a refused zip adds no class)."""
    folders = sorted(set(plan.values()))
    new = [folder for folder in folders if store.find_by_name(folder) is None]
    for folder in new:
        try:
            check_class_name(folder, [c.name for c in store.classes])
        except InputError as error:
            raise InputError(f"{report.archive}: the folder '{folder}' cannot name a class: {error}") from None
    if len({folder.casefold() for folder in new}) < len(new):
        raise InputError(f"{report.archive} has class folders whose names differ only in letter case; merge them")
    if len(store.classes) + len(new) > MAX_CLASSES:
        raise InputError(
            f"{report.archive} holds {len(new)} new classes; with the {len(store.classes)} here that is more than "
            f"{MAX_CLASSES}, the most a model here can learn"
        )
    targets = {}
    for folder in folders:
        existing = store.find_by_name(folder)
        if existing is None:
            existing = store.add_class(folder)
            report.new_classes.append(existing.name)
        targets[folder] = existing.id
    return targets


def _add_member(store: ExampleStore, class_id: str, member: PurePosixPath, file: IO[bytes], report: ZipReport) -> bool:
    """Add one member; False when a limit ends the import."""
    data = file.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        report.skipped.append((str(member), f"over {MAX_MEMBER_BYTES // 2**20} MB"))
        return True
    try:
        store.add(class_id, data, member.name, file_name=str(member))
    except LimitError as error:
        report.stopped = str(error)
        return False
    except InputError as error:
        report.skipped.append((str(member), str(error)))
        return True
    class_name = store.find(class_id).name
    report.added[class_name] = report.added.get(class_name, 0) + 1
    return True


def _one_folder_of_classes(members: list[PurePosixPath], kind: str) -> bool:
    """True for <folder>/<class>/<file>: every member in one top folder, some deeper, none of `kind` directly in it
    (which would make the top folder itself a class)."""
    in_one_folder = len({member.parts[0] for member in members}) == 1
    deeper = any(len(member.parts) >= 3 for member in members)
    return in_one_folder and deeper and not any(len(m.parts) == 2 and file_kind(Path(m.name)) == kind for m in members)


def _hidden(member: PurePosixPath) -> bool:
    """Files a zip tool adds that are not examples: hidden names and macOS' `__MACOSX/` folder."""
    return any(part.startswith(".") or part == "__MACOSX" for part in member.parts)
