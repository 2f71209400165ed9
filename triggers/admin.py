from django.contrib import admin

from triggers.models import Trigger


@admin.register(Trigger)
class TriggerAdmin(admin.ModelAdmin):
    list_display = ["name", "account", "event", "match", "keyword_list", "priority", "enabled"]
    list_filter = ["enabled", "event", "match", "account"]
    list_select_related = ["account"]
    list_editable = ["enabled", "priority"]
    search_fields = ["name", "keywords"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="Keywords")
    def keyword_list(self, obj: Trigger) -> str:
        return ", ".join(obj.keywords)
