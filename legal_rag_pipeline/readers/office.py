"""Word 97–2003 (.doc) and RTF → .docx through LibreOffice headless, then read as any .docx.

LibreOffice keeps the soft hyphen (the letter ư of TCVN3 files) and the font names (.VnTime,
VNI-Times), so the .docx reader then converts legacy encodings run by run; catdoc drops the soft
hyphen for good. LibreOffice is optional at run time (Debian: ``libreoffice-writer-nogui``): without
it such a file fails alone with that fix. Each conversion uses its own throw-away profile, so
conversions never wait on each other's lock, and it is bounded by ``CONVERT_TIMEOUT_SECONDS``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import SourceFileError

CONVERT_TIMEOUT_SECONDS = 180
_INSTALL = ("install LibreOffice (Debian/Ubuntu: apt-get install --no-install-recommends libreoffice-writer-nogui) "
            "and run again, or save the file as .docx and drop that in instead")


def soffice() -> str | None:
    """The LibreOffice executable, or None."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert_to_docx(data: bytes, source: str, suffix: str) -> bytes:
    """The bytes of a .docx converted from a .doc / .rtf held in ``data``, or ``SourceFileError``."""
    exe = soffice()
    what = "an RTF document" if suffix == ".rtf" else "a Word 97–2003 document"
    if exe is None:
        raise SourceFileError(source, f"{what}, and LibreOffice (which converts it) is not installed", _INSTALL)
    with tempfile.TemporaryDirectory(prefix="legal_rag_office_") as tmp:
        folder = Path(tmp)
        src = folder / f"input{suffix}"
        src.write_bytes(data)
        out = folder / "out"
        command = [
            exe, f"-env:UserInstallation={(folder / 'profile').as_uri()}", "--headless", "--norestore",
            "--nologo", "--nodefault", "--nolockcheck",
            # the import filter named, so a damaged file fails instead of being imported as plain text
            f"--infilter={'Rich Text Format' if suffix == '.rtf' else 'MS Word 97'}",
            "--convert-to", "docx:MS Word 2007 XML",
            "--outdir", str(out), str(src),
        ]
        env = {**os.environ, "HOME": tmp, "SAL_USE_VCLPLUGIN": "svp"}
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_SECONDS,
                                    env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise SourceFileError(source, f"LibreOffice did not convert it within {CONVERT_TIMEOUT_SECONDS} s "
                                          "(damaged, or protected by a password)",
                                  "open it in Word or LibreOffice, save it as .docx and drop that in instead") from exc
        except OSError as exc:
            raise SourceFileError(source, f"LibreOffice could not be started ({exc})", _INSTALL) from exc
        converted = out / "input.docx"
        if result.returncode != 0 or not converted.is_file() or converted.stat().st_size == 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            detail = [line for line in detail if "javaldx" not in line and line.strip()]
            reason = detail[-1][:200] if detail else f"exit code {result.returncode}, no output"
            raise SourceFileError(source, f"LibreOffice could not convert {what} (damaged, truncated or "
                                          f"password-protected: {reason})",
                                  "open it in Word or LibreOffice, save it as .docx and drop that in instead")
        return converted.read_bytes()
