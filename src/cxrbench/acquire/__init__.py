"""Getting raw files: resumable verified downloads of the NIH archives and their safe extraction."""

from cxrbench.acquire.download import download, fetch_nih
from cxrbench.acquire.extract import safe_extract

__all__ = ["download", "fetch_nih", "safe_extract"]
