"""The pinned Kafka broker classpath: which jars, their checksums, and fetching them.

The published ``kafka_2.13`` POM pulls in the broker's runtime dependencies
but not a logging backend, so the lock adds the log4j2 SLF4J binding (without
it the broker logs nothing).  The jars are downloaded once from Maven Central
(or ``SECMLOPS_MAVEN_REPO``) into the cache and every one is checked against
its sha256 before the JVM sees it.

To move to another Kafka version, change :data:`KAFKA_VERSION` and run
``python -m streams.stack.jars`` (needs Maven) to write the new lock file.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from streams.assets import sha256_file
from streams.settings import Settings
from streams.stack.process import StackError

__all__ = ["KAFKA_VERSION", "LOG4J2_VERSION", "Jar", "fetch_jars", "read_lock", "write_lock"]

KAFKA_VERSION = "4.1.2"
LOG4J2_VERSION = "2.24.3"  # the version Kafka 4.1 itself builds with


@dataclass(frozen=True)
class Jar:
    group: str
    artifact: str
    version: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        return f"{self.artifact}-{self.version}.jar"

    def url(self, repo: str) -> str:
        path = self.group.replace(".", "/")
        return f"{repo}/{path}/{self.artifact}/{self.version}/{self.filename}"


def read_lock(version: str = KAFKA_VERSION) -> list[Jar]:
    """The pinned jar set for ``version``."""
    text = resources.files("streams.stack").joinpath(f"kafka-{version}.lock").read_text()
    jars = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            coord, sha, size = line.split()
            group, artifact, ver = coord.split(":")
            jars.append(Jar(group, artifact, ver, sha, int(size)))
    return jars


def fetch_jars(settings: Settings, *, progress: bool = True) -> Path:
    """Download missing jars into the cache, verify every checksum, return the folder.

    Raises
    ------
    StackError
        When a jar cannot be downloaded (offline, proxy) or its sha256 differs.
    """
    libs = settings.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"
    libs.mkdir(parents=True, exist_ok=True)
    jars = read_lock()
    missing = [jar for jar in jars if not (libs / jar.filename).exists()]
    if missing:
        total = sum(jar.size for jar in missing)
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=f"Kafka {KAFKA_VERSION} jars",
            disable=not progress,
        ) as bar:
            for jar in missing:
                _download(jar, settings.maven_repo, libs / jar.filename, bar)
    for jar in jars:
        if sha256_file(libs / jar.filename) != jar.sha256:
            (libs / jar.filename).unlink()
            raise StackError(
                f"{jar.filename}: sha256 differs from the pinned value; the file was removed. "
                "Run the command again; if it repeats, check SECMLOPS_MAVEN_REPO."
            )
    return libs


def _download(jar: Jar, repo: str, dest: Path, bar: tqdm) -> None:
    url = jar.url(repo)
    partial = dest.with_suffix(".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:  # noqa: S310
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise StackError(
            f"cannot download {url}: {exc} (offline? set SECMLOPS_MAVEN_REPO)"
        ) from exc
    if digest.hexdigest() != jar.sha256:
        partial.unlink(missing_ok=True)
        raise StackError(f"{url}: sha256 {digest.hexdigest()} differs from the pinned {jar.sha256}")
    partial.rename(dest)


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.secmlops</groupId><artifactId>kafka-broker-classpath</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def write_lock(dest: Path) -> int:
    """Resolve the classpath with Maven and write ``group:artifact:version sha256 size`` lines."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("writing a lock file needs Maven ('mvn') on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J2_VERSION))
        listing, libs = Path(tmp) / "deps.txt", Path(tmp) / "libs"
        for goal in (
            ["dependency:list", "-DincludeScope=runtime", f"-DoutputFile={listing}"],
            ["dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={libs}"],
        ):
            subprocess.run([mvn, "-q", "-B", "-f", str(pom), *goal], check=True)  # noqa: S603
        lines = []
        for raw in listing.read_text().splitlines():
            parts = raw.strip().split(":")
            if len(parts) == 5 and parts[2] == "jar":
                group, artifact, _, version, _ = parts
                jar = libs / f"{artifact}-{version}.jar"
                lines.append(
                    f"{group}:{artifact}:{version} {sha256_file(jar)} {jar.stat().st_size}"
                )
    header = (
        f"# Kafka {KAFKA_VERSION} broker classpath, resolved by Maven from "
        f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION} (runtime scope)\n"
        f"# plus log4j-api/core/slf4j-impl {LOG4J2_VERSION}. "
        "Format: group:artifact:version sha256 size\n"
    )
    dest.write_text(header + "\n".join(sorted(lines)) + "\n")
    return len(lines)


if __name__ == "__main__":
    target = Path(__file__).with_name(f"kafka-{KAFKA_VERSION}.lock")
    count = write_lock(target)
    print(f"wrote {count} jars to {target}", file=sys.stderr)
