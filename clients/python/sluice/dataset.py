"""``sluice.Dataset``: one rank's batches from a Sluice daemon, as a PyTorch IterableDataset.

Each iteration opens one Flight stream (GetFlightInfo + DoGet) for this rank at the dataset's
position (epoch, cursor) and yields one dict of tensors per step. The position advances with every
batch yielded, so ``state_dict()`` taken after batch k and loaded into a fresh Dataset makes its
first batch batch k+1, for this or for another world size with the same global batch. A stream
that breaks off (the daemon restarted, the connection closed) is opened again at that position.
"""

import collections
import logging
import operator
import os
import queue
import threading
import time
import warnings

import pyarrow.flight as flight

from . import _convert, _cuda, _protocol, _shm

try:
    import torch
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # torch is optional: a plain iterable then
    torch = None

    class _Base(object):
        pass

STATE_VERSION = 1
RECONNECT_TIMEOUT_S = 60.0

_LOG = logging.getLogger("sluice")


class Dataset(_Base):
    """Batches of ``dataset`` for one rank, streamed by the Sluice daemon at ``url``.

    Args:
        url: the daemon, ``grpc://host:port`` (or ``host:port``).
        dataset: the dataset's name on the daemon (``sluice serve --dataset NAME=DIR``).
        batch_size: samples per batch per rank; the global batch is ``world_size * batch_size``.
        rank, world_size: default to torch.distributed when it is initialized, then to the
            environment's ``RANK`` / ``WORLD_SIZE``, else 0 / 1.
        seed, epoch: with ``shuffle`` they fix the global order; ``set_epoch`` moves to another.
        shuffle: ``"global"``, ``"block"``, ``"shard"`` or ``"none"``.
        drop_last: drop the epoch's incomplete last global batch instead of padding it by
            wrapping around (padded rows are the batch's last ``last_metadata["padded"]`` rows).
        delivery: ``"auto"`` (cuda when ``device`` is set and the daemon has a GPU, else shm when
            this process can map the daemon's shared memory, else cpu), ``"cpu"`` (batches in the
            Flight stream), ``"shm"`` (batches read in place from the daemon's shared memory: same
            host only) or ``"cuda"`` (batches put in GPU memory by the daemon and handed over by
            CUDA IPC: same host, needs cupy or cuda-python). The path each batch took is in
            ``last_metadata["delivery"]``; ``shm_unavailable_cause`` says why auto fell back to
            cpu, ``cuda_unavailable_cause`` why it did not take cuda.
        device: the GPU the batches go to (``"cuda:0"``, ``0``, a ``torch.device``); None keeps
            them on the CPU. With cuda delivery they arrive there; on the other paths they are
            moved there after conversion. ``delivery="cuda"`` without it uses torch's current
            device. The index is the GPU's on the daemon's host (the same GPUs are visible).
        columns: the columns to fetch (None: all); ``sample_id`` always comes along.
        token: the bearer token a daemon started with ``auth.tokens_file`` requires (default:
            the ``SLUICE_TOKEN`` environment variable, else the file ``SLUICE_TOKEN_FILE`` names).
        prefetch: batches read and converted ahead on a background thread while the training
            step runs (default 2; 0 reads each batch when it is asked for). A loop that asks for
            the next batch right away (under 0.25 ms after the last) has nothing to overlap: the
            batches are then read on its own thread, sparing the hand-off between threads, until
            it stays away between batches again. The position still moves only as batches are
            handed out, so ``state_dict()`` is exact either way.
        tls_root_certs: for a ``grpc+tls://`` url, the PEM certificates (bytes, or a file path)
            that sign the daemon's certificate (default: the file ``SLUICE_TLS_CA`` names, else the
            system's roots).

        reconnect_timeout: seconds to keep trying when the stream breaks off with UNAVAILABLE (the
            daemon restarted or stopped, the connection closed): the stream is opened again at
            the position, so the next batch is the one after the last handed out, as after
            ``load_state_dict``. Each break is logged (logger ``sluice``) and counted in
            ``reconnects``. It raises at once when the stream never opened, when the daemon
            answers and refuses it, or when it breaks again at the same position right after
            opening (bad data, not a restart); 0 raises on the first break.

    Each batch is a dict keyed by column: integer lists (``tokens``) as int64 ``[B, L]`` tensors,
    numbers as tensors (numpy arrays when torch is not installed), binary and strings as lists.
    Use it directly (``for batch in ds``) or in ``DataLoader(ds, batch_size=None)`` with
    ``num_workers=0``: the daemon already loads in another process, and each rank reads one stream.
    """

    def __init__(self, url, dataset, batch_size, rank=None, world_size=None, seed=0, epoch=0,
                 shuffle="global", drop_last=False, delivery="auto", columns=None, token=None,
                 tls_root_certs=None, prefetch=2, device=None,
                 reconnect_timeout=RECONNECT_TIMEOUT_S):
        self.url = _protocol.normalize_location(url)
        self._security = _protocol.Security.resolve(token, tls_root_certs, os.environ)
        self.dataset = dataset
        self.batch_size = _integer("batch_size", batch_size)
        default_rank, default_world = _default_rank_world()
        self.rank = default_rank if rank is None else _integer("rank", rank)
        self.world_size = (default_world if world_size is None
                           else _integer("world_size", world_size))
        self.seed = _integer("seed", seed)
        self.shuffle = shuffle
        self.drop_last = bool(drop_last)
        self.delivery = delivery
        self.columns = None if columns is None else list(columns)
        self.prefetch = _integer("prefetch", prefetch)
        if self.prefetch < 0:
            raise ValueError("prefetch=%d must be >= 0" % self.prefetch)
        if isinstance(reconnect_timeout, bool) or not isinstance(reconnect_timeout, (int, float)) \
                or not reconnect_timeout >= 0:
            raise ValueError("reconnect_timeout=%r must be a number of seconds >= 0"
                             % (reconnect_timeout,))
        self.reconnect_timeout = float(reconnect_timeout)
        self.reconnects = 0
        # The position: the next batch is the one after global cursor `_cursor` of `_epoch`.
        # `_epoch_done` marks an epoch read to its end: the next iteration starts the one after,
        # unless set_epoch() named this epoch since (`_epoch_pinned`), which then has nothing left.
        self._epoch = _integer("epoch", epoch)
        self._cursor = 0
        self._epoch_done = False
        self._epoch_pinned = False
        self.last_metadata = {}
        self._shm_token = None
        self.shm_unavailable_cause = None
        self.cuda_unavailable_cause = None
        self.device = _device(device, delivery)

    # --- iteration -------------------------------------------------------------------------

    def __iter__(self):
        _check_worker()
        pinned, self._epoch_pinned = self._epoch_pinned, False
        if self._epoch_done:
            if pinned:
                return iter(())
            self._epoch, self._cursor, self._epoch_done = self._epoch + 1, 0, False
        return self._batches(may_start_next_epoch=not pinned)

    def _batches(self, may_start_next_epoch):
        link = _Link(self._security, self.url)
        try:
            resumed_at_end = self._cursor > 0 and may_start_next_epoch
            yielded = yield from self._read_epoch(link)
            if yielded == 0 and resumed_at_end:
                # The position was the end of the epoch (a checkpoint taken after its last batch
                # that does not say so): go on with the next epoch, as an uninterrupted run would.
                self._epoch, self._cursor = self._epoch + 1, 0
                yield from self._read_epoch(link)
            self._epoch_done = True
        finally:
            link.close()

    def _read_epoch(self, link):
        """Yields this rank's batches from the position to the end of the epoch, moving the
        position past each batch before handing it out; returns how many it yielded. A stream
        that breaks off with UNAVAILABLE is opened again at the position (see
        ``reconnect_timeout``): batches read ahead and not handed out are read again."""
        count = 0
        retry = _Reconnect(self.reconnect_timeout)
        while True:
            answered, opened = False, []
            try:
                client = link.client()
                self._probe_shm(client, retry.reconnecting)
                answered = True
                source = self._stream(client, opened.append) if self.prefetch == 0 else _Ahead(
                    lambda cancel: self._stream(client, _both(opened.append, cancel)),
                    self.prefetch)
                try:
                    for batch, meta in source:
                        if "cursor" in meta:
                            self._cursor = int(meta["cursor"])
                        self._epoch_done = _protocol.is_last_step(meta)
                        self.last_metadata = meta
                        count += 1
                        retry.progressed()
                        yield batch
                finally:
                    source.close()
                return count
            except flight.FlightUnavailableError as e:
                link.reset()
                if not (retry.saw_a_stream or opened):
                    raise  # the stream never opened: nothing broke off
                where = "dataset=%r rank=%d epoch=%d cursor=%d" % (
                    self.dataset, self.rank, self._epoch, self._cursor)
                # An answer, then UNAVAILABLE before the stream opened: the daemon is up and
                # refuses the stream (a dataset rewritten, delivery no longer possible), unless
                # it is stopping again.
                refused = answered and not opened and "shutting down" not in str(e)
                if not retry.again((self._epoch, self._cursor), bool(opened), refused):
                    note = "sluice: the stream from %s broke off at %s; %s" % (
                        self.url, where, retry.why_not)
                    if hasattr(e, "add_note"):  # Python 3.11+
                        e.add_note(note)
                    else:
                        _LOG.error("%s", note)
                    raise
                if retry.first_attempt:
                    self.reconnects += 1
                    _LOG.warning("sluice: the stream from %s broke off at %s (%s); opening it "
                                 "again there for up to %.0f s", self.url, where,
                                 str(e).splitlines()[0] if str(e) else type(e).__name__,
                                 self.reconnect_timeout)

    def _probe_shm(self, client, reconnecting=False):
        # Once per stream: a restarted daemon has a new token. Reconnecting, cpu streams ask too:
        # the answer tells a daemon that is up from one that is not (FlightUnavailableError).
        if self.delivery not in ("shm", "auto", "cuda"):
            if reconnecting:
                _shm.probe(client, self._security.options)
            return
        answer = {}
        self._shm_token, self.shm_unavailable_cause = _shm.probe(
            client, self._security.options, answer)
        if self._shm_token is None and self.delivery in ("shm", "cuda"):
            raise RuntimeError("delivery=%r but this process cannot use the daemon's shared "
                               "memory: %s. Use delivery='auto' to fall back to cpu."
                               % (self.delivery, self.shm_unavailable_cause))
        cuda = answer.get("cuda") or {}
        self.cuda_unavailable_cause = (None if cuda.get("available")
                                       else cuda.get("cause", "the daemon did not say"))

    def _stream(self, client, on_reader=None):
        """(batch dict, metadata dict) for each step of this rank from the current position.
        ``on_reader`` is handed the Flight reader as soon as it exists (to cancel it from
        another thread)."""
        command = _protocol.descriptor_command(
            dataset=self.dataset, rank=self.rank, world_size=self.world_size,
            batch_size=self.batch_size, seed=self.seed, epoch=self._epoch, shuffle=self.shuffle,
            drop_last=self.drop_last, start_cursor=self._cursor, delivery=self.delivery,
            columns=self.columns, shm_token=self._shm_token,
            device=None if self.device is None else self.device.index)
        options = self._security.options
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
        if len(info.endpoints) != 1:
            raise RuntimeError("dataset=%r: the daemon answered %d endpoints, expected 1"
                               % (self.dataset, len(info.endpoints)))
        reader = client.do_get(info.endpoints[0].ticket, options)
        if on_reader is not None:
            on_reader(reader)
        importer = None
        gpu = None
        try:
            while True:
                try:
                    chunk = reader.read_chunk()
                except StopIteration:
                    return
                meta = _protocol.parse_batch_metadata(chunk.app_metadata)
                if meta:
                    _protocol.check_readable(meta)
                if meta.get("delivery") == "cuda":
                    slot = meta.get("cuda")
                    if slot is None:
                        raise ValueError("a cuda batch arrived without its cuda descriptor: %r"
                                         % (meta,))
                    if gpu is None:
                        gpu = _cuda.Importer(self.device if self.device is not None else "cuda")
                    batch = gpu.read(slot)  # copied out of the pool on the GPU
                    gpu.release(slot)
                    yield batch, meta
                elif meta.get("delivery") == "shm":
                    if importer is None:
                        importer = _shm.Importer(reader.schema)
                    slot = meta.get("shm")
                    if slot is None:
                        raise ValueError("a shm batch arrived without its shm descriptor: %r"
                                         % (meta,))
                    # Converted (copied out) before the slot goes back to the daemon.
                    batch = _convert.detach(_convert.batch_to_dict(importer.read(slot)))
                    importer.release(slot)
                    yield self._to_device(batch), meta
                elif chunk.data is None:
                    continue  # metadata-only message
                else:
                    yield self._to_device(_convert.batch_to_dict(chunk.data)), meta
        except GeneratorExit:
            reader.cancel()  # the consumer stopped early: tell the daemon to stop sending
            raise
        finally:
            if importer is not None:
                importer.close()
            if gpu is not None:
                gpu.close()

    def _to_device(self, batch):
        """A batch that came over cpu or shm, moved to ``device`` when one was asked for."""
        if self.device is None:
            return batch
        return {k: (v.to(self.device) if torch is not None and isinstance(v, torch.Tensor) else v)
                for k, v in batch.items()}

    # --- epochs and checkpoints ------------------------------------------------------------

    @property
    def epoch(self):
        return self._epoch

    @property
    def cursor(self):
        return self._cursor

    def set_epoch(self, epoch):
        """Like ``DistributedSampler.set_epoch``: the next iteration reads ``epoch``, from its start
        unless the dataset is already in ``epoch``. Then it keeps its position, so calling it at
        the top of the training loop right after ``load_state_dict`` resumes mid-epoch (and an
        epoch the checkpoint had finished yields nothing more)."""
        epoch = _integer("epoch", epoch)
        if epoch != self._epoch:
            self._epoch, self._cursor, self._epoch_done = epoch, 0, False
        self._epoch_pinned = True

    def state_dict(self):
        """The position after the last batch yielded, as a JSON-serializable dict."""
        return {
            "version": STATE_VERSION,
            "dataset": self.dataset,
            "seed": self.seed,
            "epoch": self._epoch,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "cursor": self._cursor,
            "epoch_done": self._epoch_done,
        }

    def load_state_dict(self, state):
        """Continue from ``state`` (from ``state_dict()``): the next batch is the one after the
        checkpoint's. The world size may differ if the global batch
        (``world_size * batch_size``) is the same; the daemon checks the cursor."""
        version = state.get("version")
        if version != STATE_VERSION:
            raise ValueError("state_dict version=%r is not supported (expected %d)"
                             % (version, STATE_VERSION))
        if state.get("dataset") != self.dataset:
            raise ValueError("state_dict dataset=%r does not match this Dataset's dataset=%r"
                             % (state.get("dataset"), self.dataset))
        # The checkpoint fixes the global order; take it rather than this Dataset's arguments.
        self.seed = int(state["seed"])
        self.shuffle = state["shuffle"]
        self.drop_last = bool(state["drop_last"])
        self._epoch = int(state["epoch"])
        self._cursor = int(state["cursor"])
        self._epoch_done = bool(state.get("epoch_done", False))
        self._epoch_pinned = False
        self.last_metadata = {}

    def __repr__(self):
        return ("sluice.Dataset(url=%r, dataset=%r, rank=%d, world_size=%d, batch_size=%d, "
                "shuffle=%r, seed=%d, epoch=%d, cursor=%d)"
                % (self.url, self.dataset, self.rank, self.world_size, self.batch_size,
                   self.shuffle, self.seed, self._epoch, self._cursor))


def _integer(name, value):
    """``value`` as an int; floats, strings and bools are refused rather than truncated."""
    if isinstance(value, bool):
        raise TypeError("%s=%r must be an integer" % (name, value))
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError("%s=%r must be an integer" % (name, value)) from None


def _device(device, delivery):
    """``device`` as a torch.device with an index, or None; checked against this process."""
    if device is None and delivery != "cuda":
        return None
    if torch is None:
        raise ValueError("device=%r / delivery=%r need torch with CUDA; torch is not installed"
                         % (device, delivery))
    if device is None:
        if not torch.cuda.is_available():
            return None  # the daemon answers why it cannot put batches on a GPU
        return torch.device("cuda", torch.cuda.current_device())
    d = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    if d.type != "cuda":
        raise ValueError("device=%r must be a CUDA device (cuda:N), or None for CPU tensors"
                         % (device,))
    if not torch.cuda.is_available():
        raise ValueError("device=%r but torch sees no CUDA device here (torch %s): %s"
                         % (device, torch.__version__, _cuda.unavailable_cause()))
    return d if d.index is not None else torch.device("cuda", torch.cuda.current_device())


def _default_rank_world():
    if torch is not None:
        dist = getattr(torch, "distributed", None)
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
    return (int(rank) if rank else 0), (int(world) if world else 1)


def _check_worker():
    if torch is None:
        return
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    if info.num_workers > 1:
        raise ValueError(
            "sluice.Dataset in a DataLoader with num_workers=%d: each rank reads one Flight "
            "stream, so every worker would get the same batches. Use num_workers=0 (the daemon "
            "already loads in another process)." % info.num_workers)
    warnings.warn(
        "sluice.Dataset in a DataLoader worker: state_dict() in the main process will not see "
        "the worker's progress. Use num_workers=0.", RuntimeWarning, stacklevel=3)


def _both(first, second):
    """A callback calling ``first`` then ``second``."""
    def call(value):
        first(value)
        second(value)
    return call


class _Link(object):
    """The Flight client of one iteration, connected anew after a broken stream."""

    def __init__(self, security, url):
        self._security = security
        self._url = url
        self._client = None

    def client(self):
        if self._client is None:
            self._client = self._security.client(self._url)
        return self._client

    def reset(self):
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a broken connection may fail its own close
                pass

    close = reset


class _Reconnect(object):
    """When to open a broken stream again: until ``timeout_s`` has passed since the first break
    without a batch in between, waiting a little longer each time (0.1 s to 2 s), but not when
    the daemon answered and refused the stream, and never twice at one position once a stream
    opened there and broke again (the same failure, not a restart). ``again`` sleeps before
    saying yes; ``why_not`` says why it said no."""

    def __init__(self, timeout_s):
        self.timeout_s = timeout_s
        self.why_not = None
        self.first_attempt = False
        self.saw_a_stream = False  # a stream of this iteration opened once
        self._reset()

    @property
    def reconnecting(self):
        return self._deadline is not None

    def progressed(self):
        """A batch came: the next break starts afresh."""
        self.saw_a_stream = True
        self._reset()

    def _reset(self):
        self._deadline = None
        self._opened_at = None
        self._delay = 0.1

    def again(self, position, opened, refused=False):
        self.saw_a_stream = self.saw_a_stream or opened
        if self.timeout_s <= 0:
            self.why_not = "reconnect_timeout=0: not opened again"
            return False
        if refused:
            self.why_not = "the daemon answered and refused the stream: given up"
            return False
        now = time.monotonic()
        self.first_attempt = self._deadline is None
        if self.first_attempt:
            self._deadline = now + self.timeout_s
        if opened:
            if self._opened_at == position:
                self.why_not = ("opened again there, it broke off again before a batch: "
                                "not a restart, given up")
                return False
            self._opened_at = position
        left = self._deadline - now
        if left <= 0:
            self.why_not = "could not open it again in reconnect_timeout=%g s" % self.timeout_s
            return False
        time.sleep(min(self._delay, left))
        self._delay = min(2.0, self._delay * 2)
        return True


class _Ahead(object):
    """Runs a batch generator on a daemon thread, ``depth`` batches ahead of its consumer, while
    the consumer stays away between batches long enough for that to pay: the Flight read and the
    conversion to tensors (which release the GIL) then overlap the training step. Handing a
    batch between threads costs about 50 us of CPU and as much delay; a consumer that comes
    right back for the next batch (a loop that does little else) has nothing to overlap, so after
    ``QUICK_RETURNS`` such returns in a row the thread stops and the consumer reads on its own
    thread, until it stays away again (``SLOW_RETURNS`` times in a row). Items, the end and any
    exception arrive in order either way; ``close()`` stops the thread, cancelling the stream if
    it waits on the daemon, and closes the generator."""

    _ITEM, _END, _ERROR, _PAUSED = 0, 1, 2, 3

    AWAY_S = 0.00025  # away at least this long between batches: the overlap pays
    QUICK_RETURNS = 8
    SLOW_RETURNS = 2

    def __init__(self, make, depth):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._pause = False  # asks the thread to stop after its current batch
        self._reader = None
        self._gen = make(self._set_reader)
        self._thread = None
        self._taken = collections.deque()  # entries the thread queued before it stopped
        self._ended = None  # the end or the error, once reached: handed out again on each call
        self._returned_at = None
        self._quick = self._slow = 0
        self._start()

    @property
    def threaded(self):
        """Whether the batches are read on the background thread now."""
        return self._thread is not None

    def _set_reader(self, reader):
        self._reader = reader
        if self._stop.is_set():
            reader.cancel()

    def _start(self):
        self._pause = False
        self._thread = threading.Thread(target=self._run, name="sluice-prefetch", daemon=True)
        self._thread.start()

    def _put(self, entry):
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self):
        try:
            while not self._pause:
                try:
                    item = next(self._gen)
                except StopIteration:
                    self._put((self._END, None))
                    return
                if not self._put((self._ITEM, item)):
                    return
            self._put((self._PAUSED, None))
        except BaseException as e:  # handed to the consumer, raised where it reads
            self._put((self._ERROR, e))

    def _stop_thread(self):
        """Waits for the thread to stop after its current batch, keeping what it queued."""
        self._pause = True
        while True:
            entry = self._queue.get()
            if entry[0] != self._PAUSED:
                self._taken.append(entry)
            if entry[0] != self._ITEM:
                break  # paused, or ended there
        self._let_thread_go()

    def _let_thread_go(self):
        """Forgets the thread, which has queued its last entry and does nothing more, then joins
        it (forgotten first: an interrupt in the join leaves nothing to wait for)."""
        thread, self._thread = self._thread, None
        thread.join()

    def __iter__(self):
        return self

    def __next__(self):
        if self._returned_at is not None and self._ended is None:
            if time.monotonic() - self._returned_at < self.AWAY_S:
                self._quick, self._slow = self._quick + 1, 0
            else:
                self._quick, self._slow = 0, self._slow + 1
            if self._thread is not None and self._quick >= self.QUICK_RETURNS:
                self._stop_thread()
            elif self._thread is None and self._slow >= self.SLOW_RETURNS:
                self._start()
        item = self._next()
        self._returned_at = time.monotonic()
        return item

    def _next(self):
        if self._ended is not None:
            kind, value = self._ended
        elif self._taken:
            kind, value = self._taken.popleft()
        elif self._thread is not None:
            kind, value = self._queue.get()
            if kind == self._PAUSED:  # a stop the consumer asked for, left by an interrupt
                self._let_thread_go()
                return self._next()
        else:
            try:
                return next(self._gen)
            except StopIteration:
                kind, value = self._END, None
            except BaseException as e:
                kind, value = self._ERROR, e
        if kind == self._ITEM:
            return value
        self._ended = (kind, value)  # stays ended
        if kind == self._END:
            raise StopIteration
        raise value

    def close(self):
        self._stop.set()
        thread = self._thread
        if thread is not None:
            reader = self._reader
            if reader is not None and thread.is_alive():
                try:
                    reader.cancel()
                except Exception:  # already finished or cancelled
                    pass
            while thread.is_alive():
                try:
                    self._queue.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()
        try:
            self._gen.close()  # the stream's own cleanup (cancel, unmap), once no thread runs it
        except Exception:  # logged, not raised over what ended the iteration
            _LOG.warning("sluice: closing a stream failed", exc_info=True)
