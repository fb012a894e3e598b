"""Pydantic models of ``ai.vectorizer`` rows and their ``config`` JSON.

Each config section is discriminated on ``implementation``, exactly as the SQL helpers write
it. Unknown keys are ignored (newer catalogs may add some); unknown implementations and bad
values are configuration errors with the offending key in the message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pgai.errors import ConfigurationError

DEFAULT_SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]

#: Rows per batch when the config does not say (pgai: 50). Providers answer a request of a few
#: hundred inputs about as fast as one of fifty, so larger batches mean fewer round trips; a
#: batch stays one transaction, and a bad row in it is isolated by halving.
DEFAULT_BATCH_SIZE = 100
#: Worker coroutines per vectorizer when neither -c nor the config says (pgai: 1). Requests
#: to a provider are mostly waiting: a few in flight keep it busy.
DEFAULT_CONCURRENCY = 4


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# -- loading ----------------------------------------------------------------------------------
class LoadingColumn(_Section):
    implementation: Literal["column"]
    column_name: str
    retries: int = Field(default=6, ge=0)


class LoadingUri(_Section):
    implementation: Literal["uri"]
    column_name: str
    retries: int = Field(default=6, ge=0)
    aws_role_arn: str | None = None


Loading = Annotated[LoadingColumn | LoadingUri, Field(discriminator="implementation")]


# -- parsing ----------------------------------------------------------------------------------
class Parsing(_Section):
    implementation: Literal["auto", "none", "pymupdf", "docling"] = "auto"


# -- chunking ---------------------------------------------------------------------------------
class CharacterTextSplitter(_Section):
    implementation: Literal["character_text_splitter"]
    chunk_size: int = Field(default=800, gt=0)
    chunk_overlap: int = Field(default=400, ge=0)
    separator: str = "\n\n"
    is_separator_regex: bool = False


class RecursiveCharacterTextSplitter(_Section):
    implementation: Literal["recursive_character_text_splitter"]
    chunk_size: int = Field(default=800, gt=0)
    chunk_overlap: int = Field(default=400, ge=0)
    separators: list[str] = Field(default_factory=lambda: list(DEFAULT_SEPARATORS))
    is_separator_regex: bool = False


class ChunkingNone(_Section):
    implementation: Literal["none"]


Chunking = Annotated[
    CharacterTextSplitter | RecursiveCharacterTextSplitter | ChunkingNone,
    Field(discriminator="implementation"),
]


# -- formatting -------------------------------------------------------------------------------
class PythonTemplate(_Section):
    implementation: Literal["python_template"]
    template: str = "$chunk"


class ChunkValue(_Section):
    implementation: Literal["chunk_value"]


Formatting = Annotated[PythonTemplate | ChunkValue, Field(discriminator="implementation")]


# -- embedding --------------------------------------------------------------------------------
class OpenAIEmbedding(_Section):
    implementation: Literal["openai"]
    model: str
    dimensions: int | None = Field(default=None, gt=0)
    user: str | None = None
    api_key_name: str | None = "OPENAI_API_KEY"
    base_url: str | None = None


class OllamaEmbedding(_Section):
    implementation: Literal["ollama"]
    model: str
    dimensions: int | None = Field(default=None, gt=0)
    base_url: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | None = None


class VoyageAIEmbedding(_Section):
    implementation: Literal["voyageai"]
    model: str
    dimensions: int | None = Field(default=None, gt=0)
    input_type: Literal["document", "query"] | None = "document"
    api_key_name: str | None = "VOYAGE_API_KEY"
    output_dimension: int | None = None
    output_dtype: str | None = None


class LiteLLMEmbedding(_Section):
    implementation: Literal["litellm"]
    model: str
    dimensions: int | None = Field(default=None, gt=0)
    api_key_name: str | None = None
    extra_options: dict[str, Any] | None = None


class SentenceTransformersEmbedding(_Section):
    implementation: Literal["sentence_transformers"]
    model: str = "nomic-ai/nomic-embed-text-v1.5"
    dimensions: int = Field(default=768, gt=0)


Embedding = Annotated[
    OpenAIEmbedding
    | OllamaEmbedding
    | VoyageAIEmbedding
    | LiteLLMEmbedding
    | SentenceTransformersEmbedding,
    Field(discriminator="implementation"),
]


# -- processing, destination, and the sections the worker only carries ------------------------
class Processing(_Section):
    implementation: Literal["default"] = "default"
    batch_size: int | None = Field(default=None, ge=1, le=2048)
    concurrency: int | None = Field(default=None, ge=1, le=50)


class TableDestination(_Section):
    implementation: Literal["table"]
    target_schema: str
    target_table: str
    view_schema: str | None = None
    view_name: str | None = None


class ColumnDestination(_Section):
    implementation: Literal["column"]
    embedding_column: str


Destination = Annotated[TableDestination | ColumnDestination, Field(discriminator="implementation")]


class Passthrough(_Section):
    """indexing and scheduling: used by the database's own job, not by the worker."""

    model_config = ConfigDict(extra="allow", frozen=True)
    implementation: str = "none"


class VectorizerConfig(_Section):
    version: str
    loading: Loading
    parsing: Parsing = Parsing()
    embedding: Embedding
    chunking: Chunking
    formatting: Formatting = PythonTemplate(implementation="python_template")
    processing: Processing = Processing()
    destination: Destination
    indexing: Passthrough = Passthrough()
    scheduling: Passthrough = Passthrough()


class PkColumn(_Section):
    attnum: int
    pknum: int
    attname: str
    typname: str


class Vectorizer(_Section):
    """One row of ``ai.vectorizer`` as ``to_jsonb(v)`` gives it."""

    id: int
    name: str | None = None
    source_schema: str
    source_table: str
    source_pk: list[PkColumn]
    trigger_name: str
    queue_schema: str
    queue_table: str
    queue_failed_table: str | None = None
    disabled: bool = False
    config: VectorizerConfig

    @model_validator(mode="before")
    @classmethod
    def _migrate_legacy_config(cls, data: Any) -> Any:
        """Configs written before pgai 0.10 named the text column in chunking.chunk_column and
        kept the destination in columns of the row; bring them to the current shape."""
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            return data
        config = dict(data["config"])
        if _version_tuple(str(config.get("version", "0"))) >= (0, 10, 0):
            return data
        chunking = dict(config.get("chunking") or {})
        if "loading" not in config and "chunk_column" in chunking:
            config["loading"] = {
                "implementation": "column",
                "config_type": "loading",
                "column_name": chunking.pop("chunk_column"),
                "retries": 6,
            }
            config["parsing"] = {"implementation": "none", "config_type": "parsing"}
            config["chunking"] = chunking
        if "destination" not in config and data.get("target_table"):
            config["destination"] = {
                "implementation": "table",
                "config_type": "destination",
                "target_schema": data.get("target_schema"),
                "target_table": data.get("target_table"),
                "view_schema": data.get("view_schema"),
                "view_name": data.get("view_name"),
            }
        config["original_version"] = config.get("version")
        config["version"] = "0.10.0"
        return {**data, "config": config}

    @property
    def pk_names(self) -> list[str]:
        """Primary-key column names in table (attnum) order, as queue tables list them."""
        return [c.attname for c in sorted(self.source_pk, key=lambda c: c.attnum)]

    @property
    def pk_names_key_order(self) -> list[str]:
        """Primary-key column names in key (pknum) order, as the advisory-lock key uses them."""
        return [c.attname for c in sorted(self.source_pk, key=lambda c: c.pknum)]

    @property
    def batch_size(self) -> int:
        """Rows claimed per batch: the config's, else DEFAULT_BATCH_SIZE (1 for URI loading:
        documents are big)."""
        size = self.config.processing.batch_size
        if size is None:
            size = 1 if isinstance(self.config.loading, LoadingUri) else DEFAULT_BATCH_SIZE
        return max(1, min(size, 2048))

    @property
    def concurrency(self) -> int:
        """Worker coroutines: the config's, else DEFAULT_CONCURRENCY."""
        return self.config.processing.concurrency or DEFAULT_CONCURRENCY


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("-")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def parse_vectorizer(row: dict[str, Any]) -> Vectorizer:
    """Validate an ``ai.vectorizer`` row; errors name the vectorizer and the offending key."""
    try:
        return Vectorizer.model_validate(row)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(
            f"vectorizer {row.get('id')} has an invalid configuration: {problems}"
        ) from exc
