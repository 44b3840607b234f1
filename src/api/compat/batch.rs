//! Batch bodies, for the providers that take several messages in one request (Resend's
//! `/emails/batch`, Postmark's `/email/batch` and `/email/batchWithTemplates`): the size
//! check, reading one item, and [`Batch`], the body's schema in the spec.

use std::{borrow::Cow, marker::PhantomData};

use serde::de::DeserializeOwned;
use serde_json::Value;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Ref, RefOr, Schema,
        schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType},
    },
};

use crate::api::error::ServiceError;

/// One message of a provider's batch.
pub trait BatchItem: ToSchema + DeserializeOwned {
    /// The batch body's name in the spec.
    const BATCH: &'static str;
    /// Most items in one batch, as the provider allows.
    const MAX: usize;
    /// What the provider calls an item, in the size check's message (`emails`).
    const NOUN: &'static str;
}

/// Refuses a batch of no items or more than the provider allows.
pub fn check_size<T: BatchItem>(n: usize) -> Result<(), ServiceError> {
    if n == 0 || n > T::MAX {
        return Err(ServiceError::validation(
            "body",
            format!("a batch holds 1 to {} {}, not {n}", T::MAX, T::NOUN),
        ));
    }
    Ok(())
}

/// One item of a batch, read on its own. A non-object is refused as the field `whole`, a
/// bad field by its path in the item, named by `at`.
pub fn read_item<T: BatchItem>(
    item: Value,
    whole: impl FnOnce() -> String,
    at: impl FnOnce(String) -> String,
) -> Result<T, ServiceError> {
    if !item.is_object() {
        return Err(ServiceError::validation(whole(), "must be a JSON object"));
    }
    serde_path_to_error::deserialize::<_, T>(item)
        .map_err(|e| ServiceError::validation(at(e.path().to_string()), e.inner().to_string()))
}

/// A batch body as the spec shows it: up to [`BatchItem::MAX`] items, each a `T` or, since
/// items are checked one by one and a bad one gets its own result, any other JSON value.
pub struct Batch<T>(PhantomData<T>);

impl<T: BatchItem> PartialSchema for Batch<T> {
    fn schema() -> RefOr<Schema> {
        let item = AnyOfBuilder::new()
            .item(Ref::from_schema_name(T::name()))
            .item(ObjectBuilder::new().schema_type(SchemaType::AnyValue));
        ArrayBuilder::new()
            .items(item)
            .min_items(Some(1))
            .max_items(Some(T::MAX))
            .into()
    }
}

impl<T: BatchItem> ToSchema for Batch<T> {
    fn name() -> Cow<'static, str> {
        T::BATCH.into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}
