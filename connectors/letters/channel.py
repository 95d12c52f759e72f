"""Letters as a ``Channel``.

- ``send`` renders one PDF per letter (ReportLab, A4): the creditor's name on top, the
  address block where a window envelope shows it (configurable; default the Dutch
  window of a C5/6 envelope: 20 mm from the left, 50 mm from the top, 85 x 40 mm), the
  date, the subject and the text. Written atomically to
  ``<dir>/<YYYY-MM-DD>/<message_id>.pdf``. The receipt carries the **expected delivery
  date** (two post days later; PostNL delivers letters Tuesday to Saturday): it starts
  the WIK clock of a 14-day letter.
- ``upload_batch`` puts a day's PDFs and a manifest (CSV: message id, file, pages,
  SHA-256, postcode) on the print provider's SFTP server, then a ``.done`` marker the
  provider waits for. A day is uploaded once (a local marker); after a crash in the
  middle the same file names go up again, which the provider overwrites.
- ``lookup``: a letter whose PDF exists was produced.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from connectors.durable import Folders, sync_path
from connectors.sftp.client import SftpClient
from connectors.sftp.settings import SftpSettings
from ledger.records import OutboundMessage, Receipt
from transforms.wik import expected_delivery


class LetterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["letters"] = "letters"
    dir: str = Field("letters", description="where the PDFs and manifests are written")
    sender_lines: list[str] = Field(default_factory=list, description="return address lines")
    window_left_mm: float = 20
    window_top_mm: float = 50
    window_width_mm: float = 85
    window_height_mm: float = 40
    post_days: int = Field(2, ge=1, le=10)
    print_provider: SftpSettings | None = Field(
        None, description="SFTP of the print-and-mail provider; without it PDFs stay local"
    )
    upload_dir: str = "upload"


class LetterChannel:
    #: a letter's PDF is on disk before ``send`` returns (``connectors.durable``):
    #: ``lookup`` knows at once
    lookup_lags = False

    def __init__(
        self,
        name: str,
        settings: LetterSettings,
        base_dir: Path,
        creditor_name: str,
        sftp_secrets: tuple[SecretStr | None, SecretStr | None] = (None, None),
        today: dt.date | None = None,
    ) -> None:
        self.name = name
        self.s = settings
        self.root = (base_dir / settings.dir).resolve()
        self.creditor_name = creditor_name
        self._secrets = sftp_secrets
        self.today = today or dt.date.today()

    # ------------------------------------------------------------------ the port
    def send(self, batch: Sequence[OutboundMessage]) -> Sequence[Receipt]:
        """Each letter's PDF, with its ``.meta`` (pages; postcode) for the print batch;
        returns once they are on disk. The PDF is renamed into place last: a letter
        whose PDF exists (``lookup``) has its meta too."""
        receipts = []
        folders = Folders()
        for m in batch:
            day = m.send_after.date() if m.send_after else self.today
            folder = folders.make(self.root / day.isoformat())
            final = folder / f"{m.message_id}.pdf"
            tmp = folder / f".{m.message_id}.part"
            pages = self._pdf(tmp, m, day)
            folders.write(
                folder / f"{m.message_id}.meta",
                f"{pages};{_postcode(m.to)}",
                folder / f".{m.message_id}.meta.part",
            )
            sync_path(tmp)
            folders.replace(tmp, final)
            delivery = expected_delivery(day, self.s.post_days)
            receipts.append(
                Receipt(
                    m.message_id,
                    "sent",
                    provider_id=f"{day.isoformat()}/{final.name}",
                    detail={"expected_delivery": delivery.isoformat(), "pages": pages},
                )
            )
        folders.sync()
        return receipts

    def lookup(self, message_ids: Sequence[str]) -> Mapping[str, Receipt]:
        out = {}
        for mid in message_ids:
            hits = list(self.root.glob(f"*/{mid}.pdf"))
            if hits:
                out[mid] = Receipt(mid, "sent", provider_id=f"{hits[0].parent.name}/{hits[0].name}")
        return out

    # ------------------------------------------------------------ the daily batch
    def upload_batch(self, day: dt.date) -> dict[str, int]:
        folder = self.root / day.isoformat()
        out = {"letters": 0, "uploaded": 0}
        pdfs = sorted(folder.glob("*.pdf")) if folder.is_dir() else []
        out["letters"] = len(pdfs)
        if not pdfs or self.s.print_provider is None or (folder / ".uploaded").exists():
            return out
        manifest = folder / f"manifest-{day.isoformat()}.csv"
        with open(manifest.with_suffix(".tmp"), "w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, delimiter=";")
            w.writerow(["message_id", "file", "pages", "sha256", "postcode"])
            for pdf in pdfs:
                pages, postcode = (pdf.with_suffix(".meta").read_text().split(";") + [""])[:2]
                digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
                w.writerow([pdf.stem, pdf.name, pages, digest, postcode])
        manifest.with_suffix(".tmp").replace(manifest)
        done = folder / f"batch-{day.isoformat()}.done"
        done.write_text(f"{len(pdfs)}\n")
        remote = f"{self.s.upload_dir}/{day.isoformat()}"
        with SftpClient(self.s.print_provider, *self._secrets) as client:
            for f in [*pdfs, manifest, done]:  # the marker last: the provider waits for it
                client.upload(f, remote, replace=True)
                out["uploaded"] += 1
        (folder / ".uploaded").write_text(dt.datetime.now(dt.UTC).isoformat())
        return out

    # ------------------------------------------------------------------- the PDF
    def _pdf(self, path: Path, m: OutboundMessage, day: dt.date) -> int:
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.units import mm
        from reportlab.lib.utils import simpleSplit
        from reportlab.pdfgen import canvas

        width, height = A4
        c = canvas.Canvas(str(path), pagesize=A4, invariant=True)  # same input, same bytes
        c.setTitle(m.subject)
        c.setAuthor(self.creditor_name)
        c.setFont("Helvetica-Bold", 14)
        c.drawString(20 * mm, height - 20 * mm, self.creditor_name)
        c.setFont("Helvetica", 8)
        y = height - 26 * mm
        for line in self.s.sender_lines:
            c.drawString(20 * mm, y, line)
            y -= 3.5 * mm
        # the address block, inside the envelope's window
        c.setFont("Helvetica", 10)
        top = height - self.s.window_top_mm * mm
        for k, line in enumerate(m.to.splitlines()[:6]):
            c.drawString(self.s.window_left_mm * mm + 2 * mm, top - (k + 1) * 5 * mm, line)
        c.setFont("Helvetica", 10)
        y = height - (self.s.window_top_mm + self.s.window_height_mm + 12) * mm
        c.drawString(20 * mm, y, day.strftime("%d-%m-%Y"))
        y -= 10 * mm
        c.setFont("Helvetica-Bold", 11)
        c.drawString(20 * mm, y, m.subject)
        y -= 8 * mm
        c.setFont("Helvetica", 10)
        pages = 1
        for para in m.body_text.splitlines():
            for line in simpleSplit(para, "Helvetica", 10, width - 40 * mm) or [""]:
                if y < 20 * mm:
                    c.showPage()
                    pages += 1
                    c.setFont("Helvetica", 10)
                    y = height - 20 * mm
                c.drawString(20 * mm, y, line)
                y -= 5 * mm
        c.showPage()
        c.save()
        return pages


def _postcode(address: str) -> str:
    import re

    m = re.search(r"\b[1-9][0-9]{3} ?[A-Z]{2}\b", address or "")
    return m.group(0) if m else ""


__all__ = ["LetterChannel", "LetterSettings"]
