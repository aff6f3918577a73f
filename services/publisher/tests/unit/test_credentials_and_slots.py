"""Agency passwords at rest, and the bound on uploads per account."""

from __future__ import annotations

import uuid

import pytest

from imagetron_contracts.models.publications import Agency
from imagetron_publisher.adapters.cipher import FernetCipher
from imagetron_publisher.app.ports import AccountBusy, CredentialsUnreadable
from imagetron_publisher.app.slots import AccountSlots


def test_passwords_are_encrypted_and_only_the_key_reads_them():
    cipher = FernetCipher(["a-long-random-key"])
    secret = cipher.encrypt("hunter2-päss")
    assert b"hunter2" not in secret
    assert cipher.encrypt("hunter2-päss") != secret  # a fresh nonce each time
    assert cipher.decrypt(secret) == "hunter2-päss"
    with pytest.raises(CredentialsUnreadable, match="set the account again"):
        FernetCipher(["another-key"]).decrypt(secret)


def test_a_rotated_key_still_reads_what_the_old_one_wrote():
    old = FernetCipher(["old-key"]).encrypt("pw")
    assert FernetCipher(["new-key", "old-key"]).decrypt(old) == "pw"


def test_an_account_at_its_bound_is_busy_and_others_are_not():
    slots = AccountSlots(per_account=2)
    ada, bob = uuid.uuid4(), uuid.uuid4()
    with slots.hold(ada, Agency.adobe_stock), slots.hold(ada, Agency.adobe_stock):
        with pytest.raises(AccountBusy), slots.hold(ada, Agency.adobe_stock):
            pass
        with slots.hold(bob, Agency.adobe_stock):
            assert slots.running(bob, Agency.adobe_stock) == 1
    assert slots.running(ada, Agency.adobe_stock) == 0
