"""The built-in redaction against a matrix of credential formats and secret-named keys, every
one checked on the bytes sent and the spans stored by the local server; ordinary text (prose,
code, ids, hashes, images) passes unchanged; the client's own API token never leaves."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any

from _rel_support import fast_http, make_agent, make_client, raw_rows, wire_bodies
from langchain_core.tools import tool

from prefactor_core.ids import new_pfid
from prefactor_core.payloads import PayloadPolicy
from prefactor_integrations.langchain import PrefactorCallbackHandler
from prefactor_local.server import LocalServer

# (format, text holding the secret, the secret, the label that replaces it). Values are made up
# in each provider's shape.
A40 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
B36 = "R4nd0mT0k3nV4lu3Xq8Zt2Lm9Pw7Ks3Jh5Df"
GOOGLE = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"
HEX32 = "0123456789abcdef0123456789abcdef"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7Vq2kP"
FORMATS: tuple[tuple[str, str, str, str], ...] = (
    ("AWS access key id", "id AKIAIOSFODNN7EXAMPLQ here", "AKIAIOSFODNN7EXAMPLQ", "aws_access_key"),
    ("AWS secret access key", f"AWS_SECRET_ACCESS_KEY={A40}", A40, "assignment"),
    ("GitHub classic token", f"ghp_{B36}", f"ghp_{B36}", "github_token"),
    ("GitHub fine-grained token", f"github_pat_11ABCDEFG0{B36}_{B36}", f"{B36}_{B36}",
     "github_token"),
    ("GitLab token", "glpat-Xy9zAbCdEfGhIjKlMnOp", "glpat-Xy9zAbCdEfGhIjKlMnOp", "gitlab_token"),
    ("Hugging Face token", f"hf_{B36[:34]}", f"hf_{B36[:34]}", "huggingface_token"),
    ("npm token", f"npm_{B36}", f"npm_{B36}", "npm_token"),
    ("PyPI token", f"pypi-AgEIcHlwaS5vcmc{B36}{B36}", f"{B36}{B36}", "pypi_token"),
    ("SendGrid key", f"SG.abcdefghijKLMNOPQRSTuv.{B36}1234567", f"{B36}1234567", "sendgrid_key"),
    ("Slack bot token", "xoxb-123456789012-abcdefABCDEF", "xoxb-123456789012-abcdefABCDEF",
     "slack_token"),
    ("Slack webhook", "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
     "XXXXXXXXXXXXXXXXXXXXXXXX", "slack_webhook"),
    ("Stripe live key", f"sk_live_{B36[:24]}", f"sk_live_{B36[:24]}", "stripe_key"),
    ("Stripe restricted key", f"rk_test_{B36[:24]}", f"rk_test_{B36[:24]}", "stripe_key"),
    ("OpenAI key", f"sk-proj-{B36}", f"sk-proj-{B36}", "api_key"),
    ("Anthropic key", f"sk-ant-api03-{B36}", f"sk-ant-api03-{B36}", "api_key"),
    ("Google API key", GOOGLE, GOOGLE, "google_api_key"),
    ("Twilio API key", f"SK{HEX32}", f"SK{HEX32}", "twilio_key"),
    ("Telegram bot token", f"123456789:AA{B36[:33]}", f"123456789:AA{B36[:33]}",
     "telegram_bot_token"),
    ("Shopify token", f"shpat_{HEX32}", f"shpat_{HEX32}", "shopify_token"),
    ("DigitalOcean token", "dop_v1_" + "ab12" * 16, "ab12" * 16, "digitalocean_token"),
    ("Databricks token", f"dapi{HEX32}", f"dapi{HEX32}", "databricks_token"),
    ("Linear key", f"lin_api_{B36}abcd", f"lin_api_{B36}abcd", "linear_key"),
    ("age secret key", "AGE-SECRET-KEY-1" + "QWERTYUIOPASDFGHJKLZXCVBNM" * 2 + "QWERTY",
     "QWERTYUIOPASDFGHJKLZXCVBNM" * 2, "age_secret_key"),
    ("JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
     "eyJzdWIiOiIxMjM0NTY3ODkwIn0", "jwt"),
    ("Authorization: Bearer", "Authorization: Bearer eyqTs8Yh2LmNp4Wq9Zr7", "eyqTs8Yh2LmNp4Wq9Zr7",
     "bearer"),
    ("Authorization: Basic", "Authorization: Basic dXNlcjpodW50ZXIyMjI=", "dXNlcjpodW50ZXIyMjI=",
     "basic_auth"),
    ("Azure AccountKey", f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={A40}==;",
     f"{A40}==", "assignment"),
    ("PEM private key",
     f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----",
     PEM_BODY, "private_key"),
    ("OpenSSH private key", f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}x\n-----END OPENSSH "
     "PRIVATE KEY-----", f"{PEM_BODY}x", "private_key"),
    ("password in JSON text", '{"user": "bob", "password": "Tr0ub4dor&3x"}', "Tr0ub4dor",
     "assignment"),
    ("password assignment", "DB_PASSWORD=hunter2-Pw9x", "hunter2-Pw9x", "assignment"),
    ("URL password", "postgres://admin:s3cr3tPw@db.internal:5432/app", "s3cr3tPw", "url_password"),
    ("URL password with @", "postgres://admin:p@ss@w0rd!@db.internal/app", "ss@w0rd",
     "url_password"),
    ("Redis URL, empty user", "redis://:r3dis-pw-77@cache:6379/0", "r3dis-pw-77", "url_password"),
    ("e-mail address", "mail alice.smith@example.com", "alice.smith@example.com", "email"),
)  # fmt: skip

# 32 key names under which any value is a secret, however they are spelt.
SECRET_KEYS = (
    "password", "db_password", "DB_PASSWORD", "userPassword", "passwd", "pwd", "passphrase",
    "secret", "client_secret", "secretKey", "AWS_SECRET_ACCESS_KEY", "api_key", "apiKey",
    "OPENAI_API_KEY", "x-api-key", "X-Api-Key", "access_key", "AccountKey", "token",
    "github_token", "session_token", "sessionToken", "access_token", "refresh-token",
    "id_token", "auth", "X-Auth", "authorization", "Proxy-Authorization", "cookie",
    "private_key", "credentials",
)  # fmt: skip


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"found for {query}"


def _stored_text(server: LocalServer) -> str:
    return "\n".join(text for row in raw_rows(server) for text in row[1:] if text)


def _run(server: LocalServer, text: str, metadata: dict[str, Any], **client: Any) -> str:
    """One traced agent run with ``text`` as the tool's argument; the wire and the store."""
    handler_options = client.pop("handler", {})
    traced = make_client(fast_http(server), **client)
    handler = PrefactorCallbackHandler(traced, agent_name="secret-matrix", **handler_options)
    agent = make_agent(tools=[lookup], tool_args={"query": text})
    result = agent.invoke(
        {"messages": [("user", text)]}, {"callbacks": [handler], "metadata": metadata}
    )
    assert result["messages"][-2].content == f"found for {text}"  # the agent saw it all
    assert handler.flush(timeout=30)
    handler.close(timeout=5)
    return wire_bodies(server).decode("utf-8") + "\n" + _stored_text(server)


def test_every_credential_format_and_secret_key_is_scrubbed(local_server: LocalServer) -> None:
    assert len(FORMATS) >= 25 and len(SECRET_KEYS) >= 30
    text = "\n".join(sample for _, sample, _, _ in FORMATS)
    values = {key: f"value-of-{index}-Qz7" for index, key in enumerate(SECRET_KEYS)}
    seen = _run(local_server, text, {"settings": values})

    leaked = [name for name, _, secret, _ in FORMATS if secret in seen]
    assert not leaked, f"leaked: {leaked}"
    unlabelled = [name for name, _, _, label in FORMATS if f"[REDACTED:{label}]" not in seen]
    assert not unlabelled, f"not labelled: {unlabelled}"
    leaked_keys = [key for key, value in values.items() if value in seen]
    assert not leaked_keys, f"leaked under: {leaked_keys}"
    for key in SECRET_KEYS:
        assert f'"{key}":"[REDACTED]"' in seen or f'"{key}": "[REDACTED]"' in seen, key


PNG = base64.b64encode(bytes(range(256)) * 6).decode()
ORDINARY = (
    "The quarterly report is due on Friday; please send the draft to the team before noon.",
    "A basic understanding of tokenization helps: max_tokens caps the reply length.",
    "def add(a: int, b: int) -> int:\n    return a + b  # keys: dict[str, int] = {}",
    "for (let i = 0; i < n; i++) { total += prices[i]; }",
    "SELECT id, name FROM users WHERE created_at > '2026-01-01' ORDER BY name;",
    str(uuid.UUID("8c3f1d2e-4b5a-4c6d-9e8f-0a1b2c3d4e5f")),
    hashlib.sha256(b"ordinary").hexdigest(),
    hashlib.sha1(b"commit").hexdigest(),
    hashlib.md5(b"etag").hexdigest(),
    new_pfid(),
    "https://docs.example.com/guide/install?version=2#step-3",
    "path /usr/local/lib/python3.12/site-packages/langchain_core/tools.py line 42",
    f"data:image/png;base64,{PNG}",
    "Token usage: 1,234 prompt and 567 completion; the key insight is caching.",
    "Passing the secret of good soup: patience.",
)
ORDINARY_KEYS = (
    "token_count", "max_tokens", "input_tokens", "keyboard", "primary_key", "key", "author",
    "password_policy", "tokenizer", "secretary",
)  # fmt: skip


def test_ordinary_text_and_keys_pass_unchanged(local_server: LocalServer) -> None:
    text = "\n".join(ORDINARY)
    keys = {key: f"kept-{index}" for index, key in enumerate(ORDINARY_KEYS)}
    seen = _run(local_server, text, {"settings": keys})
    assert "[REDACTED" not in seen
    for sample in ORDINARY:
        assert sample.replace("\n", "\\n") in seen, sample
    for value in keys.values():
        assert value in seen


def test_the_clients_api_token_is_scrubbed_from_agent_data(local_server: LocalServer) -> None:
    token = local_server.token
    # A tool echoing its environment: the token in prose, as a key and as a value, and with
    # every built-in redaction switched off, even inside a mask's output.
    echo = f"env dump: PREFACTOR_HOME=/srv; the token is {token} (do not share)"
    seen = _run(
        local_server,
        echo,
        {"env": {"HOME": "/srv", "PF": token, token: "as a key"}},
        policy=PayloadPolicy(redact_secrets=False),
        handler={"mask": lambda payload: {**payload, "echoed": token}},
    )
    assert token not in seen
    assert "the token is [REDACTED:api_token] (do not share)" in seen
    assert '"PF":"[REDACTED:api_token]","[REDACTED:api_token]":"as a key"' in seen
