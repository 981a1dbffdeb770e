"""`softmax serve`: the drawing page and its JSON API on a local web server (softmax_cli.serve)."""

from __future__ import annotations

import ipaddress
import socket
import threading

import click

from ..errors import SoftmaxError
from .options import checked, model_option
from .render import say


@click.command(short_help="Draw a digit in the browser and watch the probabilities.")
@model_option("The model file to serve.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Only this computer can connect to 127.0.0.1; 0.0.0.0 lets others "
              "on the network in.")
@click.option("--port", type=checked("port", int, low=0, high=65535), default=8000, show_default=True,
              help="The port to listen on; 0 takes any free port.")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser once it answers.")
def serve(model_path, host, port, open_browser):
    """A local web page to draw a digit and watch the model's probabilities, live.

    The page shows the probabilities as bars, the predicted class and the entropy, the image the model saw,
    and the evidence for a class (each pixel times its weight) beside that class's weight template; drawings
    can be labelled and downloaded as an .npz that `softmax evaluate --data` reads. Beside it, a JSON API:
    POST /api/predict with a PNG or JPEG body answers what `softmax predict --json` prints for it; GET
    /api/model describes the model. The server never writes a file. Ctrl-C stops it.
    """
    from ..store import load_model

    saved = load_model(model_path)
    import uvicorn  # only for this command: --help and predict do not load the server

    from ..serve.app import create_app

    listener = _listen(host, port)
    address, bound_port = listener.getsockname()[:2]
    shown_host = f"[{address}]" if ":" in address else address
    url = f"http://{shown_host}:{bound_port}/"
    accuracy = saved.metadata.get("test_accuracy")
    say(f"softmax serve: {model_path} ({saved.dataset}"
        + (f", test accuracy {accuracy:.2%}" if accuracy is not None else "") + f") at {url}")
    if _is_loopback(address):
        click.echo(f"Only this computer can connect ({address}); pass --host 0.0.0.0 to let others on the network in.")
    else:
        click.echo(f"Listening on {address}: anyone who can reach this computer on port {bound_port} can use the page.")
    click.echo("Press Ctrl-C to stop.")
    server = uvicorn.Server(uvicorn.Config(create_app(saved, model_name=str(model_path)), log_level="warning",
                                           access_log=False, lifespan="off"))
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    # On Ctrl-C uvicorn stops serving, then raises the signal again: the CLI's main exits 130 with one line.
    server.run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """Return a socket bound to host:port and listening; a problem is one SoftmaxError line naming --host/--port."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise SoftmaxError(f"cannot listen on --host {host}: {e.strerror or e}") from None
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(128)
    except OSError as e:
        listener.close()
        raise SoftmaxError(f"cannot listen on {host} port {port}: {e.strerror or e}"
                           + (" (choose another --port, or --port 0 for any free one)" if port else "")) from None
    return listener


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _open_when_started(server, url: str) -> None:
    """Open url in the web browser as soon as the server answers."""
    import time
    import webbrowser

    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        webbrowser.open(url)
