"""HTTP: :mod:`~simulator.http.transport` (the seam: Request, Response, Transport),
:mod:`~simulator.http.errors` (the one error-kind table both clients map into),
:mod:`~simulator.http.fast` (the fast client), :mod:`~simulator.http.aio` (aiohttp) and
:mod:`~simulator.http.fake` (the in-memory transport, shipped like httpx's MockTransport)."""

from simulator.http.aio import AiohttpTransport as AiohttpTransport
from simulator.http.aio import classify_aiohttp as classify_aiohttp
from simulator.http.errors import KIND_BY_INDEX as KIND_BY_INDEX
from simulator.http.errors import KIND_INDEX as KIND_INDEX
from simulator.http.errors import UNCONNECTED as UNCONNECTED
from simulator.http.errors import ErrorKind as ErrorKind
from simulator.http.errors import error_code as error_code
from simulator.http.fake import FakeReply as FakeReply
from simulator.http.fake import FakeTransport as FakeTransport
from simulator.http.fake import Handler as Handler
from simulator.http.fast import FastTransport as FastTransport
from simulator.http.fast import LazyHeaders as LazyHeaders
from simulator.http.fast import classify_connect as classify_connect
from simulator.http.fast import make_transport as make_transport
from simulator.http.transport import Body as Body
from simulator.http.transport import Request as Request
from simulator.http.transport import Response as Response
from simulator.http.transport import SubmitViaSend as SubmitViaSend
from simulator.http.transport import Transport as Transport
from simulator.http.transport import body_size as body_size
from simulator.http.transport import failure as failure
from simulator.http.transport import parse_set_cookie as parse_set_cookie
