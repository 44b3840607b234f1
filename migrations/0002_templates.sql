-- Stored templates: tera sources per project, addressed by name.
CREATE TABLE templates (
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- New for every created row: with `version` it tells a compiled copy in any process's
    -- cache apart from a newer one, even after a delete and re-create under the same name.
    id           uuid NOT NULL UNIQUE,
    description  text,
    subject      text,
    html         text,
    text         text,
    -- Another template of the same project that wraps this one; it cannot be deleted while used.
    layout       text,
    version      integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name),
    FOREIGN KEY (project_id, layout) REFERENCES templates (project_id, name),
    CHECK (html IS NOT NULL OR text IS NOT NULL)
);
-- Finds the templates that use a layout (delete and save checks).
CREATE INDEX templates_layout ON templates (project_id, layout) WHERE layout IS NOT NULL;
