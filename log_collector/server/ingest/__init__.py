"""From a POST /logs body to stored rows, one module per step:

``receive`` streams the body in (body limit, body timeout, in-flight budget);
``decode`` gunzips and decodes it into records (``IngestError``: the whole
request is refused); ``validate`` coerces one record into a row (``fields``:
what each column accepts, ``encode``: metadata as JSON text), and
``columnar`` does the same for a whole batch of records already canonical;
``batch`` turns the records into rows and stores them, one record never
failing its batch.

The answer of POST /logs reports each record stored with a value changed,
beside the ones rejected::

    "rejected": [{"index": 2, "reason": "a record must be a JSON object, got a string"}],
    "coerced":  [{"index": 0, "fields": ["environment", "log_type"],
                  "reason": "environment: 'qa' is not one of ...; log_type: ..."}]

``fields`` names the record's keys that were coerced, in the record's order
(``message`` when it is missing); their original values are in the stored
row's ``metadata._invalid`` (see ``validate``). ``coerced`` is left out when
no record is coerced, so a clean batch gets the plain answer.

Records are plain decoded JSON validated by hand: a model object per record
would cost more than the insert.
"""

from ..limits import Limits
from .batch import Batch, Stored, normalise_all, store_batch
from .decode import Body, IngestError, decode_body, parse_content_encoding

__all__ = [
    "Batch",
    "Body",
    "IngestError",
    "Limits",
    "Stored",
    "decode_body",
    "normalise_all",
    "parse_content_encoding",
    "store_batch",
]
