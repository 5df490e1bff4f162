"""Every label of the interface in English and Chinese. Gradio picks the browser's language; the
Settings panel in the footer switches it."""

from __future__ import annotations

TRANSLATIONS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Multimodal assistant",
        "language_hint": "Language: 🌐 follows your browser; switch it under Settings ⚙ at the bottom.",
        "tab_chat": "Chat",
        "tab_kb": "Knowledge base",
        "chat_label": "Chat",
        "chat_placeholder": "Ask about an image, or your documents…",
        "settings": "Settings",
        "temperature": "Temperature",
        "max_tokens": "Max new tokens",
        "num_sources": "Number of sources",
        "use_kb": "Use the knowledge base",
        "strict": "Strict grounding (answer only from documents)",
        "sources": "Sources",
        "examples": "Examples",
        "add_documents": "Add documents",
        "add_button": "Add to knowledge base",
        "documents": "Documents",
        "document": "Document",
        "delete": "Delete",
        "search": "Search",
        "search_text": "Text",
        "search_image": "Image",
        "results": "Results",
        "hits": "Hits",
        "col_document": "Document",
        "col_kind": "Kind",
        "col_chunks": "Chunks",
        "col_id": "Id",
    },
    "zh": {
        "title": "多模态助手",
        "language_hint": "语言：🌐 跟随浏览器；可在页面底部的“设置 ⚙”中切换。",
        "tab_chat": "对话",
        "tab_kb": "知识库",
        "chat_label": "对话",
        "chat_placeholder": "询问图片或您的文档…",
        "settings": "设置",
        "temperature": "温度",
        "max_tokens": "最大生成长度",
        "num_sources": "资料条数",
        "use_kb": "使用知识库",
        "strict": "严格依据模式（只根据文档回答）",
        "sources": "资料来源",
        "examples": "示例",
        "add_documents": "添加文档",
        "add_button": "加入知识库",
        "documents": "文档",
        "document": "文档",
        "delete": "删除",
        "search": "检索",
        "search_text": "文本",
        "search_image": "图片",
        "results": "结果数",
        "hits": "命中",
        "col_document": "文档",
        "col_kind": "类型",
        "col_chunks": "片段",
        "col_id": "编号",
    },
}


def make_i18n():
    import gradio as gr

    return gr.I18n(**TRANSLATIONS)
