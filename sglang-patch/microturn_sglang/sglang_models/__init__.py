"""SGLang's external model package for microturn
(``SGLANG_EXTERNAL_MODEL_PACKAGE=microturn_sglang.sglang_models``): SGLang's
ModelRegistry imports each module here and registers its ``EntryClass``."""
