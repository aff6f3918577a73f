"""The artist's accounts at the agencies: the password is encrypted before it is stored,
and never returned, logged or put in an event."""

from __future__ import annotations

from collections.abc import Mapping

from imagetron_contracts.models import publications as contract
from imagetron_platform.clock import Clock
from imagetron_platform.errors import InvalidRequest, NotFound
from imagetron_publisher.app.ports import (
    AgencyAccount,
    AgencyDelivery,
    CredentialCipher,
    UnitOfWork,
)


def account_view(
    account: AgencyAccount, agencies: Mapping[contract.Agency, AgencyDelivery]
) -> contract.AgencyAccount:
    delivery = agencies[account.agency]
    return contract.AgencyAccount(
        agency=account.agency,
        username=account.username,
        host=delivery.host,
        port=delivery.port,
        has_password=bool(account.secret),
        updated_at=account.updated_at,
    )


async def get_account(
    query: contract.AgencyAccountQuery,
    uow: UnitOfWork,
    agencies: Mapping[contract.Agency, AgencyDelivery],
) -> contract.AgencyAccount:
    async with uow:
        account = await uow.accounts.get(query.owner_id, query.agency)
    if account is None:
        raise NotFound(f"You have no {query.agency} account here yet.")
    return account_view(account, agencies)


async def set_account(
    cmd: contract.SetAgencyAccountCommand,
    uow: UnitOfWork,
    cipher: CredentialCipher,
    agencies: Mapping[contract.Agency, AgencyDelivery],
    clock: Clock,
) -> contract.AgencyAccount:
    username, password = cmd.username.strip(), cmd.password
    if not username or not password:
        raise InvalidRequest("Both the username and the password are needed.")
    if cmd.agency not in agencies:
        raise InvalidRequest(f"Publishing to {cmd.agency} is not configured here.")
    account = AgencyAccount(
        owner_id=cmd.owner_id,
        agency=cmd.agency,
        username=username,
        secret=cipher.encrypt(password),
        updated_at=clock(),
    )
    async with uow:
        await uow.accounts.put(account)
        await uow.commit()
    return account_view(account, agencies)


async def delete_account(
    query: contract.AgencyAccountQuery,
    uow: UnitOfWork,
    agencies: Mapping[contract.Agency, AgencyDelivery],
) -> contract.AgencyAccount:
    async with uow:
        account = await uow.accounts.get(query.owner_id, query.agency)
        if account is None:
            raise NotFound(f"You have no {query.agency} account here.")
        await uow.accounts.delete(query.owner_id, query.agency)
        await uow.commit()
    return account_view(account, agencies)
