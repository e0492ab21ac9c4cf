"""Bot API methods of Telegram Stars payments: sendInvoice, answerPreCheckoutQuery,
refundStarPayment.

Only XTR (Stars) invoices are emulated: they need no payment provider, and they are what the
bot sells. A payment is made by the test, as the user would: ``make_pre_checkout_update``,
then ``make_successful_payment_update``, which registers the charge that a refund checks.
"""

from __future__ import annotations

from typing import Any

from voxmesh_dev.telegram.outgoing import Outbox
from voxmesh_dev.telegram.params import Handler, Params, bad_request
from voxmesh_dev.telegram.state import BotState


class PaymentMethods:
    def __init__(self, state: BotState, outbox: Outbox) -> None:
        self.state = state
        self.outbox = outbox

    def handlers(self) -> dict[str, Handler]:
        return {
            "sendinvoice": self.send_invoice,
            "answerprecheckoutquery": self.answer_pre_checkout_query,
            "refundstarpayment": self.refund_star_payment,
        }

    async def send_invoice(self, p: Params) -> Any:
        chat_id = p.chat_id()
        title = p.get_str("title") or ""
        description = p.get_str("description") or ""
        payload_text = p.get_str("payload") or ""
        currency = p.get_str("currency") or ""
        if not 1 <= len(title) <= 32:
            raise bad_request("INVOICE_TITLE_EMPTY" if not title else "invoice title is too long")
        if not 1 <= len(description) <= 255:
            raise bad_request(
                "INVOICE_DESCRIPTION_EMPTY"
                if not description
                else "invoice description is too long"
            )
        if not 1 <= len(payload_text.encode("utf-8")) <= 128:
            raise bad_request("INVOICE_PAYLOAD_INVALID")
        if currency != "XTR":
            if not p.get_str("provider_token"):
                raise bad_request("PAYMENT_PROVIDER_INVALID")
            raise bad_request("only Telegram Stars (XTR) invoices are emulated")
        prices = p.get_json("prices")
        if (
            not isinstance(prices, list)
            or len(prices) != 1
            or not isinstance(prices[0], dict)
            or not isinstance(prices[0].get("amount"), int)
            or prices[0]["amount"] <= 0
        ):
            # Stars invoices take exactly one positive price
            raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
        total = int(prices[0]["amount"])
        markup = self.outbox.markup(p)
        reply = self.outbox.reply(chat_id, p)
        self.outbox.check_can_send(chat_id)
        invoice = {
            "title": title,
            "description": description,
            "start_parameter": p.get_str("start_parameter") or "",
            "currency": currency,
            "total_amount": total,
        }
        message = self.outbox.new_message(
            chat_id, reply=reply, markup=markup, extra={"invoice": invoice}
        )
        # The payload and prices are the bot's, not shown to the user: only the record has them.
        message.invoice = {**invoice, "payload": payload_text, "prices": prices}
        return message.payload

    async def refund_star_payment(self, p: Params) -> Any:
        charge = p.get_str("telegram_payment_charge_id") or ""
        payer = self.state.charges.get(charge)
        if payer is None:
            raise bad_request("CHARGE_NOT_FOUND")
        if p.get_int("user_id") != payer:
            raise bad_request("USER_ID_INVALID")
        if charge in self.state.refunded:
            raise bad_request("CHARGE_ALREADY_REFUNDED")
        self.state.refunded.add(charge)
        return True

    async def answer_pre_checkout_query(self, p: Params) -> Any:
        query_id = p.get_str("pre_checkout_query_id") or ""
        if query_id not in self.state.open_pre_checkouts:
            raise bad_request("QUERY_ID_INVALID")
        ok = p.get_bool("ok")
        error_message = p.get_str("error_message")
        if not ok and not error_message:
            raise bad_request("error_message is empty")
        self.state.open_pre_checkouts.discard(query_id)
        self.state.pre_checkout_answers[query_id] = {"ok": ok, "error_message": error_message}
        return True
