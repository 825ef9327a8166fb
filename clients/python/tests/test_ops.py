"""The daemon as an operator runs it: a config file, metrics and /healthz, systemd readiness,
SIGTERM mid-epoch with a resume at the exact sample, TLS and bearer tokens with real clients."""

import json
import os
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pyarrow.flight as flight
import pytest

import sluice
from sluice_daemon import Daemon, launcher, serving

TOKEN = "3b9f0c1e5d7a4f2e8c6b1a0d9e7f5c3b"


@pytest.fixture(autouse=True)
def _own_daemons(served):
    if served.dataset_dir is None:
        pytest.skip("these tests start their own daemons (not with SLUICE_TEST_SERVER=python)")


def _metrics(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        return r.read().decode("utf-8")


def _series(text, name, **labels):
    """The value of one series in Prometheus text, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == name and not labels:
            return float(value)
        if key.startswith(name + "{"):
            got = ",".join(sorted(key[len(name) + 1:-1].split(",")))
            if got == want:
                return float(value)
    return None


def _serving_field(daemon, field):
    for part in daemon.serving_line.split():
        if part.startswith(field + "="):
            return part.split("=", 1)[1]
    raise AssertionError("no %s= in %r" % (field, daemon.serving_line))


def _check_rows(served, batch):
    ids = batch["sample_id"].numpy()
    assert np.array_equal(batch["tokens"].numpy(), served.expected_tokens(ids))
    return ids


def test_a_config_file_serves_and_metrics_count_what_was_delivered(served, tmp_path):
    cfg = tmp_path / "sluice.yaml"
    cfg.write_text("metrics_port: 0\nmemory_budget: 512m\ndatasets:\n"
                   "  - {name: tok16, path: %s}\n" % served.dataset_dir)
    with serving({}, ["--config", str(cfg)]) as d:
        metrics_url = _serving_field(d, "metrics")
        with urllib.request.urlopen(metrics_url + "/healthz", timeout=10) as r:
            assert r.status == 200 and r.read() == b"ok\n"
        ds = sluice.Dataset(d.url, "tok16", 32, rank=0, world_size=1, delivery="cpu")
        n = sum(len(_check_rows(served, b)) for b in ds)
        assert n >= served.n
        text = _metrics(metrics_url)
        assert _series(text, "sluice_delivered_samples_total", dataset="tok16",
                       delivery="cpu") == n
        assert _series(text, "sluice_delivered_bytes_total", dataset="tok16",
                       delivery="cpu") >= served.n * served.seq_len * 2
        assert _series(text, "sluice_errors_total", kind="not_found") == 0
        # Names resolve to configured datasets only: a path-like name is just not one of them.
        with pytest.raises(KeyError, match=r"dataset=\.\./\.\./etc is not served here"):
            list(sluice.Dataset(d.url, "../../etc", 8, rank=0, world_size=1))
        text = _metrics(metrics_url)
        assert _series(text, "sluice_errors_total", kind="not_found") == 1
        assert "memory_budget: 512m  # config %s" % cfg in subprocess.run(
            d.cmd + ["--print-config"], stdout=subprocess.PIPE, text=True, check=True).stdout


def test_sigterm_mid_epoch_exits_0_in_time_and_a_restart_resumes_at_the_exact_sample(
        served, tmp_path):
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(60)
    world, batch = 2, 16
    states, seen = [], []
    try:
        d = Daemon({"tok16": served.dataset_dir}, env={"NOTIFY_SOCKET": str(notify)})
        d.wait_ready()
        assert sock.recv(4096).startswith(b"READY=1"), "systemd readiness"
        its = []
        for rank, take in ((0, 3), (1, 5)):
            # shm: the daemon holds an shm stream open until its slots come back, so the stop
            # finds it running; a cpu stream of tok16 could have sent its whole rest already.
            ds = sluice.Dataset(d.url, "tok16", batch, rank=rank, world_size=world,
                                delivery="shm", reconnect_timeout=0)
            it = iter(ds)
            for _ in range(take):
                seen.extend(_check_rows(served, next(it)).tolist())
            states.append(ds.state_dict())
            its.append(it)
        t0 = time.monotonic()
        code = d.terminate()
        took = time.monotonic() - t0
        assert code == 0, "serve exits 0 after SIGTERM:\n" + "\n".join(d.lines)
        assert took < 10, "stopped in %.1f s" % took
        assert sock.recv(4096).startswith(b"STOPPING=1")
        d.stop()
        # A stream cut by the stop ends with UNAVAILABLE naming where the daemon got to.
        with pytest.raises(flight.FlightUnavailableError, match="shutting down"):
            for _ in its[0]:
                pass
    finally:
        sock.close()
    with serving({"tok16": served.dataset_dir}) as d2:
        for rank in range(world):
            ds = sluice.Dataset(d2.url, "tok16", batch, rank=rank, world_size=world)
            ds.load_state_dict(states[rank])
            for b in ds:
                seen.extend(_check_rows(served, b).tolist())
    counts = np.bincount(np.asarray(seen), minlength=served.n)
    # Without drop_last the last global step pads by wrapping around: those rows repeat.
    padded = (-served.n) % (world * batch)
    assert counts.min() == 1, "every sample at least once"
    assert counts.sum() == served.n + padded, "nothing delivered twice beyond the padding"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("delivery,prefetch", [("shm", 2), ("cpu", 0)])
def test_a_daemon_restarted_mid_epoch_is_picked_up_at_the_next_batch(long16, delivery, prefetch):
    # long16, not tok16: the rest of tok16's epoch fits in the connection's buffers, so the daemon
    # could finish the stream before the stop and the client would never need to reconnect.
    batch, seed, port = 32, 5, _free_port()
    datasets = {"long16": long16.dataset_dir}

    def check(b):
        ids = b["sample_id"].numpy()
        assert np.array_equal(b["tokens"].numpy(), long16.expected_tokens(ids))
        return ids.tolist()

    first = Daemon(datasets, port=port)
    second = []
    try:
        first.wait_ready()
        uninterrupted = [b["sample_id"].numpy().tolist()
                         for b in sluice.Dataset(first.url, "long16", batch, rank=0,
                                                 world_size=1, seed=seed, delivery="cpu")]
        ds = sluice.Dataset(first.url, "long16", batch, rank=0, world_size=1, seed=seed,
                            delivery=delivery, prefetch=prefetch, reconnect_timeout=120)
        it = iter(ds)
        got = [check(next(it)) for _ in range(5)]
        assert first.terminate() == 0
        first.stop()

        def restart():  # while the client tries again
            time.sleep(1)
            second.append(Daemon(datasets, port=port))

        starter = threading.Thread(target=restart)
        starter.start()
        try:
            got += [check(b) for b in it]
        finally:
            starter.join()  # a failure above must not leave the second daemon running
    finally:
        first.stop()
        for d in second:
            d.stop()
    assert len(uninterrupted) == -(-long16.n // batch)
    assert got == uninterrupted, "the same batches in the same order, none lost or repeated"
    assert ds.reconnects == 1, "the stop came mid-stream: the client had to reconnect once"
    assert ds.last_metadata["delivery"] == delivery


def test_a_restarted_daemon_that_refuses_the_stream_is_given_up_at_once(long16):
    port = _free_port()
    first = Daemon({"long16": long16.dataset_dir}, port=port)
    second = None
    try:
        first.wait_ready()
        ds = sluice.Dataset(first.url, "long16", 32, rank=0, world_size=1, delivery="cpu",
                            reconnect_timeout=60)
        it = iter(ds)
        next(it)
        assert first.terminate() == 0
        first.stop()
        # Back on its port without that dataset: it answers, and refuses the stream.
        second = Daemon({"other": long16.dataset_dir}, port=port)
        second.wait_ready()
        t0 = time.monotonic()
        with pytest.raises(KeyError, match="dataset=long16 is not served here"):
            for _ in it:
                pass
        assert time.monotonic() - t0 < 30, "given up at once, not after reconnect_timeout"
        assert ds.reconnects == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_daemon_that_is_not_there_at_the_start_fails_at_once(served):
    ds = sluice.Dataset("grpc://127.0.0.1:%d" % _free_port(), "tok16", 16, rank=0, world_size=1,
                        delivery="cpu", reconnect_timeout=60)
    t0 = time.monotonic()
    with pytest.raises(flight.FlightUnavailableError):
        next(iter(ds))
    assert time.monotonic() - t0 < 10, "no reconnecting before a stream ever opened"
    assert ds.reconnects == 0


def test_a_daemon_that_stays_down_is_given_up_after_reconnect_timeout(served, caplog):
    d = Daemon({"tok16": served.dataset_dir})
    try:
        d.wait_ready()
        # shm, for the reason the SIGTERM test gives: the stream is still open at the stop.
        ds = sluice.Dataset(d.url, "tok16", 16, rank=0, world_size=1, delivery="shm",
                            reconnect_timeout=1.5)
        it = iter(ds)
        next(it)
        assert d.terminate() == 0
    finally:
        d.stop()
    t0 = time.monotonic()
    with pytest.raises(flight.FlightUnavailableError) as raised:
        for _ in it:
            pass
    assert time.monotonic() - t0 < 15
    # The note is on the exception (Python 3.11+), else logged.
    notes = "\n".join(getattr(raised.value, "__notes__", [])) or caplog.text
    assert "could not open it again in reconnect_timeout=1.5 s" in notes, notes
    assert "cursor=%d" % ds.cursor in notes, notes
    assert ds.reconnects == 1


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    other_cert, other_key = d / "other.pem", d / "other-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(other_key), "-out",
                    str(other_cert), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tokens = d / "tokens"
    tokens.write_text("# test clients\n%s\n" % TOKEN)
    os.chmod(str(tokens), stat.S_IRUSR | stat.S_IWUSR)
    return {"cert": cert, "key": key, "other": other_cert, "tokens": tokens}


def test_tls_and_a_bearer_token_with_plain_pyarrow_and_the_dataset(served, tls_files,
                                                                   monkeypatch):
    args = ["--tls-cert", str(tls_files["cert"]), "--tls-key", str(tls_files["key"]),
            "--auth-tokens-file", str(tls_files["tokens"]), "--metrics-port", "0"]
    with serving({"tok16": served.dataset_dir}, args) as d:
        assert d.url.startswith("grpc+tls://"), d.serving_line
        assert "tls=on auth=on" in d.serving_line
        ca = tls_files["cert"].read_bytes()
        command = json.dumps({"dataset": "tok16", "rank": 0, "world_size": 1, "batch_size": 64})
        descriptor = flight.FlightDescriptor.for_command(command)
        # Plain pyarrow: no token, a wrong one, then the right one.
        client = flight.FlightClient(d.url, tls_root_certs=ca)
        with pytest.raises(flight.FlightUnauthenticatedError, match="none was sent"):
            client.get_flight_info(descriptor)
        wrong = flight.FlightCallOptions(headers=[(b"authorization", b"Bearer " + b"x" * 32)])
        with pytest.raises(flight.FlightUnauthenticatedError, match="not one this daemon"):
            client.get_flight_info(descriptor, wrong)
        ok = flight.FlightCallOptions(
            headers=[(b"authorization", ("Bearer " + TOKEN).encode())])
        info = client.get_flight_info(descriptor, ok)
        table = client.do_get(info.endpoints[0].ticket, ok).read_all()
        assert table.num_rows >= served.n
        client.close()
        # A certificate the client does not trust: the handshake fails, nothing is served.
        stranger = flight.FlightClient(d.url, tls_root_certs=tls_files["other"].read_bytes())
        with pytest.raises(flight.FlightUnavailableError):
            stranger.get_flight_info(descriptor, ok)
        stranger.close()
        # The Python client, from arguments and from the environment.
        ds = sluice.Dataset(d.url, "tok16", 32, rank=0, world_size=1, token=TOKEN,
                            tls_root_certs=str(tls_files["cert"]))
        assert set(i for b in ds for i in _check_rows(served, b)) == set(range(served.n))
        monkeypatch.setenv("SLUICE_TOKEN", TOKEN)
        monkeypatch.setenv("SLUICE_TLS_CA", str(tls_files["cert"]))
        from_env = sluice.Dataset(d.url, "tok16", 32, rank=0, world_size=1)
        assert set(i for b in from_env for i in _check_rows(served, b)) == set(range(served.n))
        monkeypatch.delenv("SLUICE_TOKEN")
        with pytest.raises(flight.FlightUnauthenticatedError):
            list(sluice.Dataset(d.url, "tok16", 32, rank=0, world_size=1,
                                tls_root_certs=str(tls_files["cert"])))
        assert repr(ds._security).count(TOKEN) == 0, "the token is never shown"
        text = _metrics(_serving_field(d, "metrics"))
        assert _series(text, "sluice_errors_total", kind="unauthenticated") >= 3


def test_serving_beyond_loopback_without_tls_is_refused(served):
    done = subprocess.run([launcher(), "serve", "--host", "0.0.0.0", "--dataset",
                           "tok16=%s" % served.dataset_dir], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    assert done.returncode == 2, done.stdout
    assert "--host=0.0.0.0 is not a loopback address" in done.stdout
